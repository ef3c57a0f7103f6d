"""Reading a finished store: ``open_store(DIR)`` gives the manifest, arrays and h5py handles."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from lumos.store import keyed, layout


class StoreError(ValueError):
    """A folder is not a (finished) lumos store, or lacks what was asked for."""


class Store:
    """A dataset store written by :func:`lumos.explain_dataset`, opened read-only.

    Attributes
    ----------
    folder:
        The store's folder.
    manifest:
        ``DIR/manifest.json``: model, dataset, methods, settings hash, lumos version, shards,
        per-method timing.
    methods:
        Method keys in the order they were asked for (``ig``, ``lrp:epsilon-plus``, ...).
    computed:
        Shards the :func:`~lumos.explain_dataset` call that returned this store computed
        (0: it was complete already); ``None`` when opened with :func:`open_store`.

    Use it as a context manager (or call :meth:`close`) to close the h5py handles it opened.
    """

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.manifest = manifest
        self.methods: list[str] = list(manifest["methods"])
        self.computed: int | None = None
        self._handles: list[Any] = []

    def __len__(self) -> int:
        return int(self.manifest["n"])

    @property
    def classes(self) -> list[str]:
        """Class names of the dataset's labels, in label order."""
        return list(self.manifest["dataset"].get("classes") or [])

    def path(self, key: str) -> Path:
        """The HDF5 file of method ``key`` (``DIR/<stem>.h5``)."""
        if key not in self.manifest["methods"]:
            raise StoreError(f"{self.folder} has no method {key!r}; it has "
                             f"{', '.join(self.methods)}")
        return self.folder / self.manifest["methods"][key]["file"]

    def h5(self, key: str | None = None) -> Any:
        """Open h5py handle of method ``key``'s file, or of ``input.h5`` when ``key`` is None."""
        import h5py

        path = self.folder / f"{layout.INPUT}.h5" if key is None else self.path(key)
        handle = h5py.File(path, "r")
        self._handles.append(handle)
        return handle

    def arrays(self, key: str | None = None, fields: tuple[str, ...] | None = None,
               ) -> dict[str, np.ndarray]:
        """Method ``key``'s datasets (or ``input.h5``'s) read into numpy arrays, by name (not
        the groups below, such as ``concepts``: see :meth:`concepts`)."""
        import h5py

        path = self.folder / f"{layout.INPUT}.h5" if key is None else self.path(key)
        with h5py.File(path, "r") as f:
            names = fields or tuple(k for k in f if hasattr(f[k], "shape"))
            missing = [n for n in names if n not in f]
            if missing:
                raise StoreError(f"{path} has no dataset {missing[0]!r}; it has "
                                 f"{', '.join(f.keys())}")
            return {n: f[n][()] for n in names}

    def concept_layers(self, key: str) -> dict[str, int]:
        """``{layer: channels}`` of the concept layers method ``key`` stored (``--concepts``)."""
        self.path(key)
        return dict(self.manifest["methods"][key].get("concepts") or {})

    def concepts(self, key: str, layer: str) -> dict[str, np.ndarray]:
        """Method ``key``'s concept statistics of ``layer``: ``relevance``, ``relevance_max``,
        ``activation``, ``activation_max``, each ``(N, channels)`` (see
        :mod:`lumos.store.concepts`)."""
        import h5py

        layers = self.concept_layers(key)
        if layer not in layers:
            have = ", ".join(layers) or "none (run explain-dataset with --concepts LAYER)"
            raise StoreError(f"method {key!r} of {self.folder} has no concepts of layer "
                             f"{layer!r}; it has: {have}")
        with h5py.File(self.path(key), "r") as f:
            group = f[f"concepts/{layer}"]
            return {name: group[name][()] for name in group}

    def close(self) -> None:
        """Close every h5py handle this store opened."""
        for handle in self._handles:
            handle.close()
        self._handles.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Store({str(self.folder)!r}, n={len(self)}, methods={self.methods}, "
                f"complete={self.manifest.get('complete', False)})")


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``DIR/manifest.json`` as a dict, or ``None`` if there is none (or it is damaged)."""
    return keyed.read_record(Path(folder) / layout.MANIFEST)


def open_store(folder: str | os.PathLike[str], *, allow_incomplete: bool = False) -> Store:
    """Open the store in ``folder``.

    Raises
    ------
    StoreError
        No manifest there, or the run has not finished (unless ``allow_incomplete``).
    """
    path = Path(folder)
    manifest = read_manifest(path)
    if manifest is None or manifest.get("format") != "lumos-store":
        raise StoreError(f"{path} is not a lumos store (no {layout.MANIFEST}); write one with "
                         "`lumos explain-dataset ... --out DIR`")
    if not manifest.get("complete") and not allow_incomplete:
        done, total = manifest.get("shards_done", 0), manifest.get("shards_total", "?")
        raise StoreError(f"{path}: the run has not finished ({done}/{total} shards); rerun "
                         "the same explain-dataset command to complete it")
    return Store(path, manifest)
