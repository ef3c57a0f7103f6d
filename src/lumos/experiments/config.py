"""Reading and writing the study's TOML configuration.

Python 3.11+ reads TOML with the standard library's ``tomllib``; on 3.10 lumos uses ``tomli``
when it is installed and otherwise says how to get it. Writing needs no library: the settings
are flat tables of numbers, strings, booleans and lists of those.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration file that cannot be read or has wrong keys or types."""


def _toml() -> Any:
    for name in ("tomllib", "tomli"):  # tomli: the same parser, for Python 3.10
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ConfigError("reading TOML on Python 3.10 needs tomli: pip install tomli "
                      "(Python 3.11+ has it built in)")


def loads(text: str, source: str = "<string>") -> dict[str, Any]:
    """Parse TOML text; a syntax error becomes one :class:`ConfigError` line naming ``source``."""
    toml = _toml()
    try:
        return dict(toml.loads(text))
    except toml.TOMLDecodeError as err:
        raise ConfigError(f"{source} is not valid TOML: {err}") from err


def load(path: str | Path) -> dict[str, Any]:
    """Read a TOML file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    return loads(p.read_text(encoding="utf-8"), str(p))


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {type(value).__name__} to TOML")


def dumps(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """TOML text for ``{table: {key: value}}`` with scalar or list values."""
    out: list[str] = []
    for name, table in tables.items():
        out.append(f"[{name}]")
        out += [f"{key} = {_value(value)}" for key, value in table.items()]
        out.append("")
    return "\n".join(out)


def merge(defaults: Mapping[str, Any], given: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``defaults`` updated by ``given``; unknown keys and wrong types are one clear error."""
    merged = dict(defaults)
    for key, value in given.items():
        if key not in defaults:
            raise ConfigError(f"unknown setting {where}.{key}; known: {', '.join(defaults)}")
        expected = defaults[key]
        numeric = isinstance(expected, float) and isinstance(value, int)
        if not numeric and type(value) is not type(expected):
            raise ConfigError(f"{where}.{key} must be {type(expected).__name__}, got "
                              f"{type(value).__name__} {value!r}")
        merged[key] = float(value) if numeric else value
    return merged
