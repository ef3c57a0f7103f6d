"""The API reference lists every public name of every documented package, and nothing else."""

from __future__ import annotations

import importlib
import re

import pytest
import yaml
from docfix import DOCS, REPO

from docsite import apiref


@pytest.mark.parametrize("package", list(apiref.PACKAGES))
def test_every_name_of_all_has_an_entry(package: str) -> None:
    module = importlib.import_module(package)
    names = [e.name for e in apiref.entries(package)]
    assert names == list(module.__all__)
    page = DOCS / apiref.PACKAGES[package]
    assert f"<!-- api: {package} -->" in page.read_text(encoding="utf-8")
    text = apiref.expand(package, apiref.PACKAGES[package])
    for entry in apiref.entries(package):
        assert f"[`{entry.name}" in text  # a row of the table
        if entry.page == apiref.PACKAGES[package] and entry.kind != "module":
            assert f"::: {package}.{entry.name}\n" in text  # rendered here
        elif entry.kind == "module" and entry.members:
            assert f"::: {entry.anchor}\n" in text and all(m in text for m in entry.members)


def test_objects_are_rendered_once_on_their_most_specific_page() -> None:
    rendered: dict[str, list[str]] = {}
    for package, page in apiref.PACKAGES.items():
        for identifier in re.findall(r"^::: (\S+)$", apiref.expand(package, page), re.M):
            rendered.setdefault(identifier, []).append(page)
    assert rendered["lumos.lrp.LRP"] == ["api/lrp.md"] and "lumos.LRP" not in rendered
    assert "lumos.Explanation" in rendered and "lumos.store.explain_dataset" in rendered
    links = apiref.expand("lumos", "api/lumos.md")
    assert "(lrp.md#lumos.lrp.LRP)" in links and "(store.md#lumos.store.open_store)" in links


def test_every_api_page_is_in_the_nav() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8").replace(
        "!!python", "#"))
    api = next(item["API reference"] for item in config["nav"] if "API reference" in item)
    assert sorted(p for entry in api for p in entry.values()) == sorted(apiref.PACKAGES.values())
