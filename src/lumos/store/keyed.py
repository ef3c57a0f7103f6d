"""Resumable work keyed by its settings: one mechanism for the dataset store and ``reproduce``.

A unit of finished work is a file (or folder) next to a JSON record holding the hash of the
settings that produced it. Work counts as done only when the record exists, parses, and its
hash equals the hash of the current settings; records are written atomically, last, so a crash
never leaves a record for unfinished work.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from lumos.atomic import write_bytes_atomic

#: The JSON key that holds the settings hash in every record.
HASH_KEY = "config_hash"


def settings_hash(*parts: Any) -> str:
    """Short stable hash of JSON-able settings (16 hex digits); ``str`` for anything else."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_record(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object at ``path``, or ``None`` when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_record(path: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Write ``record`` as indented JSON at ``path``, atomically."""
    text = json.dumps(record, indent=1, sort_keys=True, default=str) + "\n"
    return write_bytes_atomic(text.encode(), path)


def finished(path: str | os.PathLike[str], expected_hash: str) -> bool:
    """Whether the record at ``path`` exists and was written for settings ``expected_hash``."""
    record = read_record(path)
    return record is not None and record.get(HASH_KEY) == expected_hash
