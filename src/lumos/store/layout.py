"""The store's files and their HDF5 layout (ViRelAy's database specification).

``DIR/input.h5`` holds the model inputs (``data`` ``(N, C, H, W)`` float32 after the model's
preprocessing, ``label`` ``(N,)`` uint, ``index`` ``(N,)`` uint); ``DIR/<stem>.h5`` holds one
method's ``attribution`` ``(N, C, H, W)``, ``prediction`` ``(N, classes)`` float32 (the model's
output), ``label`` ``(N,)`` (the dataset's label), ``index`` ``(N,)`` (position in the dataset)
and the per-sample checks (``target``, ``output``, ``delta``, ...). See ``docs/store.md``.

While a run is under way each finished index range (a *shard*) is one file
``DIR/shards/<start>-<stop>.h5`` holding every group (``input`` and one per method). Rank 0 also
copies each shard it finishes into temp versions of the files above (:class:`Assembly`), beside
the computation; when all shards are there the rest are copied in, the files are renamed into
place and the shards are removed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
INPUT = "input"
SHARDS = "shards"
ANALYSIS_PREFIX = "analysis-"
#: The order of the eigenvalues (and spectral embedding columns) in analysis files: CoRelAy's.
SPECTRUM_ORDER = "descending"
_PART = ".part"

#: Datasets of every method file, in the order ViRelAy's specification lists them.
METHOD_FIELDS = ("index", "attribution", "label", "prediction")
#: Per-sample checks a method file may add.
CHECK_FIELDS = ("target", "output", "delta", "baseline_output", "n_steps", "converged", "error")


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - h5py is a dependency
        raise ImportError("the dataset store needs h5py: pip install h5py") from err
    return h5py


def method_stem(key: str) -> str:
    """File stem of a method key: ``ig`` -> ``ig``, ``lrp:epsilon-plus`` -> ``lrp-epsilon-plus``."""
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")


def analysis_file(folder: Path, key: str) -> Path:
    """``DIR/analysis-<stem>.h5``: where ``lumos spray`` writes method ``key``'s analysis."""
    return folder / f"{ANALYSIS_PREFIX}{method_stem(key)}.h5"


def spectrum_order(f: Any) -> str:
    """``"descending"`` or ``"ascending"``: how an open analysis file orders its spectrum
    (files without the ``spectrum_order`` attribute were written ascending by lumos 0.1)."""
    order = f.attrs.get("spectrum_order", "ascending")
    return order.decode() if isinstance(order, bytes) else str(order)


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
                group.create_dataset(field, data=array, chunks=row_chunks(array.shape,
                                                                       array.dtype.itemsize))
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


def row_chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...] | None:
    """HDF5 chunks of whole rows, about 1 MiB each (one row when a row is larger); none for a
    vector. Chunked rows write in a third of the time of one contiguous block (h5py 3.16:
    33 ms against 70-110 ms for 77 MB) and read back row by row."""
    if len(shape) < 2 or shape[0] == 0:
        return None
    row = itemsize * int(np.prod(shape[1:]))
    return (max(1, min(shape[0], 2**20 // max(row, 1))), *shape[1:])


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


class Assembly:
    """The store's final files (one per group), filled shard by shard while a run goes on.

    Each file is a temp file next to ``DIR/<group>.h5`` holding datasets of all ``total`` rows;
    :meth:`add` writes one shard's rows (on the shard writer's thread when I/O overlaps the
    computation), so that :meth:`finish` has only the shards nobody added left to
    copy before it renames the files into place. A killed run leaves temp files only (the
    next run removes them, :func:`remove_partials`).
    """

    def __init__(self, folder: Path, total: int,
                 attrs: Mapping[str, Mapping[str, Any]]) -> None:
        self.folder, self.total, self.attrs = folder, total, attrs
        self.filled: set[tuple[int, int]] = set()
        self._files: dict[str, Any] = {}

    def _temp(self, group: str) -> Path:
        return self.folder / f".{group}.h5.{os.getpid()}{_PART}"

    def add(self, rows: tuple[int, int], groups: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        """Write rows ``rows[0]:rows[1]`` of every group this assembly builds (made durable by
        :meth:`finish`: a temp file of a killed run is never reused, so it needs no fsync)."""
        h5py = _h5py()
        for group in self.attrs:
            arrays = groups[group]
            f = self._files.get(group)
            if f is None:
                f = self._files[group] = h5py.File(self._temp(group), "w")
                for field, array in arrays.items():
                    shape = (self.total, *array.shape[1:])
                    f.create_dataset(field, shape=shape, dtype=array.dtype,
                                     chunks=row_chunks(shape, array.dtype.itemsize))
            for field, array in arrays.items():
                f[field][rows[0]:rows[1]] = array
        self.filled.add(rows)

    def finish(self, todo: Iterable[tuple[int, int]],
               shard_of: Callable[[tuple[int, int]], Path]) -> list[Path]:
        """Add the rows of ``todo`` not added yet from their shard files, then rename every
        file into place; the written paths."""
        h5py = _h5py()
        for rows in todo:
            if rows not in self.filled:
                with h5py.File(shard_of(rows), "r") as f:
                    self.add(rows, {g: datasets(f[g]) for g in self.attrs})
        written = []
        for group, attrs in self.attrs.items():
            f = self._files.pop(group)
            for k, v in attrs.items():
                f.attrs[k] = v
            f.close()
            tmp, target = self._temp(group), self.folder / f"{group}.h5"
            _fsync(tmp)
            os.replace(tmp, target)
            written.append(target)
        return written

    def abort(self) -> None:
        """Close and remove the temp files (after an error)."""
        for group, f in self._files.items():
            try:
                f.close()
            finally:
                self._temp(group).unlink(missing_ok=True)
        self._files.clear()


def datasets(group: Any) -> dict[str, np.ndarray]:
    """Every dataset under an h5py group, read, by its path relative to the group (nested
    groups such as ``concepts/<layer>/relevance`` included)."""
    out: dict[str, np.ndarray] = {}

    def visit(name: str, item: Any) -> None:
        if hasattr(item, "shape"):  # a dataset, not a group
            out[name] = item[()]

    group.visititems(visit)
    return out


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
