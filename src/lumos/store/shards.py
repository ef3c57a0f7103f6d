"""Shards: the index ranges a run is cut into, which of them are finished, who computes what.

A shard is finished when ``DIR/shards/<start>-<stop>.h5`` exists (it is renamed into place only
when complete) and records the run's settings hash. Unfinished shards are dealt to the ranks
round-robin, so every rank gets disjoint work and no sample is padded in twice (unlike
``DistributedSampler``, which repeats samples to even out the ranks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lumos.store import layout
from lumos.store.keyed import HASH_KEY

Range = tuple[int, int]


def ranges(n: int, shard_size: int) -> list[Range]:
    """``[(0, s), (s, 2s), ...]`` covering ``0..n-1``; the last one may be shorter."""
    if shard_size < 1:
        raise ValueError(f"shard size must be >= 1, got {shard_size}")
    return [(a, min(a + shard_size, n)) for a in range(0, n, shard_size)]


def finished(folder: Path, expected_hash: str) -> dict[Range, dict[str, Any]]:
    """Finished shards under ``folder/shards`` written with ``expected_hash``, with their attrs."""
    out: dict[Range, dict[str, Any]] = {}
    shard_dir = folder / layout.SHARDS
    if not shard_dir.is_dir():
        return out
    for path in sorted(shard_dir.iterdir()):
        rng = layout.parse_shard_name(path.name)
        if rng is None:
            continue
        attrs = layout.read_shard_attrs(path)
        if attrs is not None and attrs.get(HASH_KEY) == expected_hash:
            out[rng] = attrs
    return out


def deal(pending: list[Range], rank: int, world_size: int) -> list[Range]:
    """The pending shards rank ``rank`` computes: every ``world_size``-th, from its own offset."""
    return pending[rank::world_size]


def record(attrs: dict[str, Any]) -> dict[str, Any]:
    """A shard's manifest entry from its file attributes."""
    return {"start": int(attrs["start"]), "stop": int(attrs["stop"]), "run": int(attrs["run"]),
            "rank": int(attrs["rank"]), "seconds": json.loads(attrs["seconds"]),
            "images_resized": int(attrs.get("images_resized", 0))}


def path(folder: Path, rng: Range) -> Path:
    """Where shard ``rng`` lives while the run is unfinished."""
    return folder / layout.SHARDS / layout.shard_name(*rng)
