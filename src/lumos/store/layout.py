"""The store's files and their HDF5 layout (ViRelAy's database specification).

``DIR/input.h5`` holds the model inputs (``data`` ``(N, C, H, W)`` float32 after the model's
preprocessing, ``label`` ``(N,)`` uint, ``index`` ``(N,)`` uint); ``DIR/<stem>.h5`` holds one
method's ``attribution`` ``(N, C, H, W)``, ``prediction`` ``(N, classes)`` float32 (the model's
output), ``label`` ``(N,)`` (the dataset's label), ``index`` ``(N,)`` (position in the dataset)
and the per-sample checks (``target``, ``output``, ``delta``, ...). See ``docs/store.md``.

While a run is under way each finished index range (a *shard*) is one file
``DIR/shards/<start>-<stop>.h5`` holding every group (``input`` and one per method); when all
shards are there they are concatenated into the files above and the shards are removed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
INPUT = "input"
SHARDS = "shards"
_PART = ".part"

#: Datasets of every method file, in the order ViRelAy's specification lists them.
METHOD_FIELDS = ("index", "attribution", "label", "prediction")
#: Per-sample checks a method file may add.
CHECK_FIELDS = ("target", "output", "delta", "baseline_output", "n_steps", "converged")


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - h5py is a dependency
        raise ImportError("the dataset store needs h5py: pip install h5py") from err
    return h5py


def method_stem(key: str) -> str:
    """File stem of a method key: ``ig`` -> ``ig``, ``lrp:epsilon-plus`` -> ``lrp-epsilon-plus``."""
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")


def method_file(folder: Path, key: str) -> Path:
    """``DIR/<stem>.h5`` of method ``key``."""
    return folder / f"{method_stem(key)}.h5"


def shard_name(start: int, stop: int) -> str:
    """File name of the shard holding dataset positions ``start`` to ``stop - 1``."""
    return f"{start:010d}-{stop:010d}.h5"


def parse_shard_name(name: str) -> tuple[int, int] | None:
    """``(start, stop)`` of a shard file name, ``None`` for any other name."""
    match = re.fullmatch(r"(\d{10})-(\d{10})\.h5", name)
    return (int(match[1]), int(match[2])) if match else None


def write_shard(path: Path, groups: Mapping[str, Mapping[str, np.ndarray]],
                attrs: Mapping[str, Any]) -> Path:
    """Write one shard: a temp file next to ``path``, fsynced, then renamed onto ``path``.

    ``groups`` maps a group name (``input`` or a method stem) to its arrays; ``attrs`` go on the
    file's root (JSON-able scalars and strings).
    """
    h5py = _h5py()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _replacing(path) as tmp, h5py.File(tmp, "w") as f:
        for name, arrays in groups.items():
            group = f.create_group(name)
            for field, array in arrays.items():
                group.create_dataset(field, data=array)
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temp path next to ``path``; fsynced and renamed onto ``path`` when the block succeeds,
    removed when it raises."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_PART}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_shard_attrs(path: Path) -> dict[str, Any] | None:
    """The root attributes of a finished shard, or ``None`` if it cannot be read."""
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            return {k: _plain(v) for k, v in f.attrs.items()}
    except (OSError, KeyError):
        return None


def merge(folder: Path, shards: Iterable[Path], groups: Iterable[str],
          attrs: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """Concatenate the shards' groups into ``DIR/<group>.h5`` files (each temp + rename).

    ``attrs`` gives root attributes per group file. Returns the written paths.
    """
    h5py = _h5py()
    paths = sorted(shards, key=lambda p: parse_shard_name(p.name) or (0, 0))
    written = []
    for group in groups:
        target = folder / f"{group}.h5"
        with _replacing(target) as tmp, h5py.File(tmp, "w") as out:
            _concatenate(out, [(h5py.File(p, "r"), group) for p in paths])
            for k, v in attrs.get(group, {}).items():
                out.attrs[k] = v
        written.append(target)
    return written


def _concatenate(out: Any, sources: list[tuple[Any, str]]) -> None:
    try:
        first = sources[0][0][sources[0][1]]
        total = sum(f[g]["index"].shape[0] for f, g in sources)
        for field in first:
            ref = first[field]
            chunks = (1, *ref.shape[1:]) if ref.ndim > 1 else None
            ds = out.create_dataset(field, shape=(total, *ref.shape[1:]), dtype=ref.dtype,
                                    chunks=chunks)
            at = 0
            for f, g in sources:
                block = f[g][field]
                ds[at:at + block.shape[0]] = block[()]
                at += block.shape[0]
    finally:
        for f, _ in sources:
            f.close()


def remove_partials(folder: Path) -> int:
    """Delete temp files left by a killed writer under ``folder`` (recursively); the count."""
    count = 0
    for p in folder.rglob(f".*{_PART}"):
        p.unlink(missing_ok=True)
        count += 1
    return count


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
