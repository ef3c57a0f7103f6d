"""The README's shape, and nothing in the repository pointing outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from docfix import REPO

LINK = re.compile(r"\[[^\]]*\]\((?!https?://|mailto:|#)([^)\s]+)\)")
OUTSIDE = re.compile(r"\.\./shared|/work/|shared/(?:DESIGN|METHODS)\.md")
TEXT = (".md", ".py", ".toml", ".yml", ".yaml", ".cfg", ".txt", ".sh", ".js", ".css", ".html",
        ".json", "Makefile", "run")


def tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if out.returncode:  # not a git checkout (an unpacked sdist): every file
        return [p for p in REPO.rglob("*") if p.is_file() and ".venv" not in p.parts]
    return [REPO / line for line in out.stdout.splitlines() if line]


def test_readme_is_short_and_shows_lrp_on_a_vit_early() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    head = "\n".join(lines[:100])
    assert "LRP on a ViT" in head and "VisionTransformer" in head
    assert "make demo" in "\n".join(lines[:25]) and "make test" in "\n".join(lines[:25])


def test_nothing_refers_to_files_outside_the_repository() -> None:
    offenders = []
    for path in tracked():
        if not path.name.endswith(TEXT) or not path.is_file():
            continue
        if path == Path(__file__):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{n + 1}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md", "CHANGELOG.md"])
def test_links_of_the_top_level_pages_resolve_inside_the_repository(name: str) -> None:
    page = REPO / name
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(REPO), f"{name}: {target} leaves the repository"
        assert path.exists(), f"{name}: {target} does not exist"
