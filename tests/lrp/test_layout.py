"""The engine's layout rule: no class in lumos.lrp or lumos.crp over ~150 lines (issue 23).

A class that grows past it mixes concerns; split it along a seam (a helper object, module-level
functions for a distinct step) rather than letting it grow.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import pytest

import lumos.crp
import lumos.lrp

#: Longest class allowed, in lines from ``class`` to its last statement (docstring included).
MAX_CLASS_LINES = 150


def class_lengths(root: Path) -> dict[str, int]:
    """``{"file.py::Class": lines}`` for every class (nested ones too) under ``root``."""
    found: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                key = f"{path.relative_to(root).as_posix()}::{node.name}"
                found[key] = node.end_lineno - first + 1
    return found


@pytest.mark.parametrize("package", [lumos.lrp, lumos.crp], ids=["lrp", "crp"])
def test_no_class_in_the_engine_is_longer_than_150_lines(package: ModuleType) -> None:
    root = Path(package.__file__ or "").parent
    lengths = class_lengths(root)
    assert len(lengths) > 5, "the check found too few classes: wrong folder?"
    long = {k: n for k, n in lengths.items() if n > MAX_CLASS_LINES}
    assert not long, f"classes over {MAX_CLASS_LINES} lines (split them along a seam): {long}"


def test_the_check_measures_a_class_from_decorator_to_last_line(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("import dataclasses\n\n@dataclasses.dataclass\nclass A:\n"
                                   "    x: int = 0\n\n    def f(self) -> int:\n"
                                   "        return self.x\n", encoding="utf-8")
    assert class_lengths(tmp_path) == {"m.py::A": 6}
