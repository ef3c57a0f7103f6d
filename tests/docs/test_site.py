"""The site builds with --strict, offline, and shows every public name and every command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from docfix import REPO

from docsite import apiref
from lumos.cli import COMMANDS


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(out)], cwd=REPO, capture_output=True, text=True, timeout=1200,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert not re.search(r"^WARNING\s+-", proc.stderr, re.M), proc.stderr[-5000:]
    return out


@pytest.mark.slow
def test_every_public_name_has_its_anchor_on_its_page(site: Path) -> None:
    missing = []
    for package in apiref.PACKAGES:
        for entry in apiref.entries(package):
            html = (site / entry.page.replace(".md", ".html")).read_text(encoding="utf-8")
            if entry.anchor not in apiref.PACKAGES and f'id="{entry.anchor}"' not in html:
                missing.append(f"{package}.{entry.name} -> {entry.page}#{entry.anchor}")
    assert not missing, "\n".join(missing)


@pytest.mark.slow
def test_cli_tutorials_formulas_and_no_external_requests(site: Path) -> None:
    cli = (site / "guide" / "cli.html").read_text(encoding="utf-8")
    assert all(f'id="lumos-{name}"' in cli for name in COMMANDS)
    for page in (site / "tutorials").glob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert '<img alt="output of the cell above"' in html, page.name
    assert "<math" in (site / "methods" / "ig.html").read_text(encoding="utf-8")
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        external = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', html)
        assert not external, f"{page.relative_to(site)} loads {external[:3]}"
