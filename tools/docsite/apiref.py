"""The API reference, written at build time from each documented package's ``__all__``.

A page under ``docs/api/`` holds prose and one marker line, ``<!-- api: lumos.metrics -->``;
:func:`expand` replaces the marker with a table of the package's public names and one
mkdocstrings block per name. Nothing is listed by hand, so moving code between internal modules
changes no page, and a name added to ``__all__`` appears without anyone editing the docs.

Each object is rendered once, on the page of the most specific documented package that exports
it (``lumos.LRP`` on the ``lumos.lrp`` page); other pages link there. A submodule named in
``__all__`` that has no page of its own (``lumos.lrp.rules``) is rendered in place, with its own
``__all__`` (or, without one, the public classes and functions it defines).
"""

from __future__ import annotations

import importlib
import inspect
import posixpath
import re
import types
from dataclasses import dataclass
from functools import cache
from typing import Any

#: Documented packages and their pages (relative to ``docs/``), most general first.
PACKAGES: dict[str, str] = {
    "lumos": "api/lumos.md",
    "lumos.attribution": "api/attribution.md",
    "lumos.lrp": "api/lrp.md",
    "lumos.metrics": "api/metrics.md",
    "lumos.data": "api/data.md",
    "lumos.models": "api/models.md",
    "lumos.store": "api/store.md",
    "lumos.analysis": "api/analysis.md",
    "lumos.viz": "api/viz.md",
    "lumos.crp": "api/crp.md",
}

MARKER = re.compile(r"^<!--\s*api:\s*([\w.]+)\s*-->[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class Entry:
    """One public name of a package and where the reference documents it."""

    package: str
    name: str
    kind: str  # "module", "class", "function" or "attribute"
    summary: str
    page: str  # the page that renders it (relative to docs/)
    anchor: str  # the HTML id on that page
    members: tuple[str, ...] = ()  # for a module rendered in place: its documented names


def public_names(module: types.ModuleType) -> list[str]:
    """``module.__all__``, or the public classes and functions it defines itself."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return sorted(n for n, v in vars(module).items()
                  if not n.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))
                  and getattr(v, "__module__", None) == module.__name__)


def _kind(value: Any) -> str:
    if inspect.ismodule(value):
        return "module"
    if inspect.isclass(value):
        return "class"
    if callable(value):
        return "function"
    return "attribute"


def _summary(value: Any, kind: str) -> str:
    doc = inspect.getdoc(value) if kind != "attribute" else None
    if not doc:
        return ""
    first = doc.strip().split("\n\n")[0]
    return " ".join(first.split()).replace("|", "\\|")


def _home(package: str, name: str, value: Any) -> str:
    """The most specific documented package that exports ``value`` (itself at the least)."""
    if inspect.ismodule(value):
        return package
    best = package
    for other in PACKAGES:
        if other.startswith(package + ".") and len(other) > len(best):
            module = importlib.import_module(other)
            if any(getattr(module, n, None) is value for n in public_names(module)):
                best = other
    return best


def _exported_name(package: str, value: Any, fallback: str) -> str:
    module = importlib.import_module(package)
    for n in public_names(module):
        if getattr(module, n, None) is value:
            return n
    return fallback


@cache
def entries(package: str) -> tuple[Entry, ...]:
    """Every name of ``package.__all__`` with the page and anchor that document it."""
    module = importlib.import_module(package)
    if not hasattr(module, "__all__"):
        raise ValueError(f"{package} has no __all__: the API reference lists exactly its "
                         "__all__, so a documented package must define one")
    out = []
    for name in module.__all__:
        value = getattr(module, name)
        kind = _kind(value)
        qualified = f"{package}.{name}"
        if kind == "module" and value.__name__ in PACKAGES:
            out.append(Entry(package, name, kind, _summary(value, kind),
                             PACKAGES[value.__name__], value.__name__))
            continue
        if kind == "module":
            members = tuple(public_names(value))
            out.append(Entry(package, name, kind, _summary(value, kind), PACKAGES[package],
                             value.__name__, members))
            continue
        home = _home(package, name, value)
        anchor = qualified if home == package else f"{home}.{_exported_name(home, value, name)}"
        out.append(Entry(package, name, kind, _summary(value, kind), PACKAGES[home], anchor))
    return tuple(out)


def _link(entry: Entry, from_page: str) -> str:
    target = posixpath.relpath(entry.page, posixpath.dirname(from_page))
    if entry.page == from_page:
        return f"#{entry.anchor}"
    return f"{target}#{entry.anchor}" if entry.anchor not in PACKAGES else target


def _block(identifier: str, level: int, heading: str, members: tuple[str, ...] | None = None,
           inherited: bool = False) -> str:
    lines = [f"::: {identifier}", "    options:", f"      heading_level: {level}",
             "      show_root_heading: true", f'      heading: "{heading}"',
             f'      toc_label: "{heading}"']
    if inherited:   # a class built on another lumos class: its public methods are the user's
        lines.append("      inherited_members: true")
    if members is not None:
        lines.append(f"      members: [{', '.join(members)}]")
    else:
        lines.append("      members: false" if identifier in PACKAGES
                     else "      show_submodules: false")
    return "\n".join(lines)


def expand(package: str, page: str) -> str:
    """The markdown that replaces ``<!-- api: package -->`` on ``page``."""
    rows = ["| name | what it is |", "|---|---|"]
    blocks = []
    for e in entries(package):
        label = f"{e.name}" + (" (module)" if e.kind == "module" else "")
        rows.append(f"| [`{label}`]({_link(e, page)}) | {e.summary} |")
        if e.page != page:
            continue
        if e.kind == "module":
            blocks.append(_block(e.anchor, 2, e.anchor, e.members))
        else:
            value = getattr(importlib.import_module(package), e.name)
            blocks.append(_block(f"{package}.{e.name}", 2, e.name, inherited=_lumos_base(value)))
    return "\n".join(rows) + "\n\n" + "\n\n".join(blocks) + "\n"


def _lumos_base(value: object) -> bool:
    """Whether ``value`` is a class with a lumos class among its bases."""
    return isinstance(value, type) and any(
        base.__module__.split(".")[0] == "lumos" for base in value.__mro__[1:])


def expand_markers(markdown: str, page: str) -> str:
    """``markdown`` with every API marker expanded (pages without markers come back as is)."""
    return MARKER.sub(lambda m: expand(m.group(1), page), markdown)


def documented() -> dict[str, list[Entry]]:
    """Every documented package's entries, for the coverage test."""
    return {p: list(entries(p)) for p in PACKAGES}
