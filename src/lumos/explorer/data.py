"""What the explorer shows, read from a store directory: JSON payloads and PNG thumbnails.

Only files this module names itself are opened: ``DIR/manifest.json``, ``DIR/input.h5``,
``DIR/<key>.h5`` and ``DIR/analysis-<key>.h5`` for the keys found by listing ``DIR``. Requests
name methods, classes and sample indices, never paths; anything not in those lists is
:class:`NotFound`.
"""

from __future__ import annotations

import json
import os
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lumos.analysis import layout

THUMB_MAX = 112
"""Thumbnails larger than this (pixels per side) are shrunk; smaller ones stay native size."""


class NotFound(LookupError):
    """A method, class, sample or image the directory does not have."""


def class_names(directory: str | os.PathLike[str]) -> list[str] | None:
    """Class names from ``DIR/manifest.json`` (``classes`` there or in ``dataset``), if any."""
    path = Path(directory) / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for holder in (manifest, manifest.get("dataset") if isinstance(manifest, dict) else None):
        if isinstance(holder, dict) and isinstance(holder.get("classes"), list):
            return [str(c) for c in holder["classes"]]
    return None


class StoreView:
    """Read-only access to one store directory for the explorer (thread-safe)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).resolve()
        if not self.directory.is_dir():
            raise layout.StoreError(f"{directory} is not a directory")
        self._lock = threading.Lock()
        self.methods = {k: layout.MethodFile.open(layout.attribution_path(self.directory, k))
                        for k in layout.method_keys(self.directory)}
        self.analysed = [k for k in self.methods
                         if layout.analysis_path(self.directory, k).is_file()]
        from lumos.explorer.concepts import concept_files

        self.concepts = list(concept_files(self.directory, list(self.methods)))
        if not self.analysed and not self.concepts:
            raise layout.StoreError(f"{directory} has no analysis-<method>.h5 and no "
                                    f"concepts-<method>.h5; run `lumos spray {directory} "
                                    f"--method K` or `lumos concepts {directory} --layer L` "
                                    "first")
        self.names = class_names(self.directory) or []
        self._input = self.directory / "input.h5"
        self._input_rows = self._read_input_rows()
        self._rows = {k: {int(i): r for r, i in enumerate(m.index)}
                      for k, m in self.methods.items()}
        self._analysis = lru_cache(maxsize=8)(self._read_analysis)
        self._concepts: Any = None

    def concept_view(self) -> Any:
        """The concept analyses of this store (:class:`lumos.explorer.concepts.ConceptView`),
        read on first use."""
        with self._lock:
            if self._concepts is None:
                from lumos.explorer.concepts import ConceptView

                self._concepts = ConceptView(self)
        return self._concepts

    def _read_input_rows(self) -> dict[int, int] | None:
        """``{sample index: row}`` of ``input.h5`` (None: rows are the sample indices)."""
        import h5py

        if not self._input.is_file():
            return None
        with h5py.File(self._input, "r") as f:
            if "index" not in f:
                return None
            return {int(i): r for r, i in enumerate(f["index"][()])}

    def _read_analysis(self, key: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return layout.read_analysis(layout.analysis_path(self.directory, key))

    def analysis(self, key: str) -> dict[str, dict[str, Any]]:
        """The analysis file of method ``key``."""
        if key not in self.analysed:
            raise NotFound(f"no analysis for method {key!r}")
        return self._analysis(key)

    def index(self) -> dict[str, Any]:
        """The page's table of contents: methods, their analysed classes, and the others."""
        return {"directory": self.directory.name, "has_input": self._input.is_file(),
                "methods": list(self.methods), "concepts": self.concepts,
                "analysed": {k: [{"key": g, "name": c["name"], "n": len(c["index"])}
                                 for g, c in self.analysis(k).items()] for k in self.analysed}}

    def class_payload(self, key: str, group: str) -> dict[str, Any]:
        """Everything the page draws for one class of one method, as JSON-ready values."""
        classes = self.analysis(key)
        if group not in classes:
            raise NotFound(f"method {key!r} has no analysed class {group!r}")
        c = classes[group]
        m = self.methods[key]
        rows = c["row"].astype(np.int64)
        pred = m.prediction[rows]
        embeddings = {name: _unit_box(e[:, :2]) for name, e in c["embeddings"].items()
                      if name != "spectral"}
        # the eigenvectors of the 2nd and 3rd smallest eigenvalues (the smallest is constant
        # on a connected graph); the spectrum is stored largest first (CoRelAy's order)
        spectral = c["embeddings"]["spectral"]
        embeddings["spectral"] = _unit_box(spectral[:, [-2, -3]] if spectral.shape[1] > 2
                                           else spectral[:, ::-1])
        k = c["eigengap_k"]
        return {
            "method": key, "class": group, "name": c["name"], "n": len(rows),
            "index": c["index"].astype(int).tolist(),
            "label": m.label[rows].astype(int).tolist(),
            "prediction": (pred.argmax(axis=1).astype(int).tolist() if pred.shape[1]
                           else [-1] * len(rows)),
            "embeddings": embeddings, "eigenvalues": _rounded(c["eigenvalue"], 5),
            "eigengap_k": k,
            "clusterings": {str(n): lab.astype(int).tolist()
                            for n, lab in sorted(c["clusterings"].items())},
            "border": _rounded(c["border_fraction"], 4),
            "rank": {o: _rounded(v, 4) for o, v in c["rank_correlation"].items()},
            "others": [o for o in self.methods if o != key],
        }

    def image(self, kind: str, key: str | None, sample: int) -> bytes:
        """PNG of sample ``sample``: ``input``, or method ``key``'s ``heatmap`` / ``overlay``."""
        from lumos.viz.image import heatmap, overlay, png_bytes

        if kind == "input":
            return png_bytes(_thumb(self._input_image(sample)))
        if kind not in ("heatmap", "overlay") or key not in self.methods:
            raise NotFound(f"no image {kind!r} for method {key!r}")
        row = self._rows[key].get(sample)
        if row is None:
            raise NotFound(f"method {key!r} has no heatmap of sample {sample}")
        with self._lock:
            attr = self.methods[key].rows(np.array([row]))[0]
        if kind == "heatmap":
            return png_bytes(_thumb(heatmap(attr)))
        return png_bytes(_thumb(overlay(self._input_image(sample), attr)))

    def prototype(self, key: str, group: str, k: int, cluster: int) -> bytes:
        """PNG of the mean heatmap of cluster ``cluster`` of the k-means with ``k`` clusters."""
        from lumos.viz.image import heatmap, png_bytes

        protos = self.analysis(key).get(group, {}).get("prototypes", {})
        if k not in protos or not 0 <= cluster < len(protos[k]):
            raise NotFound(f"no cluster {cluster} of kmeans-{k} for {key!r} class {group!r}")
        return png_bytes(_thumb(heatmap(protos[k][cluster])))

    def _input_image(self, sample: int) -> Any:
        from lumos.viz.image import to_image

        return to_image(self._input_array(sample))

    def _input_array(self, sample: int) -> np.ndarray:
        """Sample ``sample``'s input ``(C, H, W)`` scaled into ``[0, 1]`` for the eye."""
        import h5py

        if not self._input.is_file():
            raise NotFound("the store has no input.h5")
        row = sample if self._input_rows is None else self._input_rows.get(sample, -1)
        with self._lock, h5py.File(self._input, "r") as f:
            data = f["data"]
            if not 0 <= row < data.shape[0]:
                raise NotFound(f"no input sample {sample}")
            x = np.asarray(data[row], dtype=np.float64)
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:  # normalised inputs: stretch to [0, 1] for the eye
            x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
        return x


def _thumb(image: Any) -> Any:
    from lumos.viz.image import resize

    side = max(image.size)
    if side <= THUMB_MAX:
        return image
    w, h = image.size
    return resize(image, (max(1, w * THUMB_MAX // side), max(1, h * THUMB_MAX // side)))


def _unit_box(points: np.ndarray) -> list[list[float]]:
    """Points scaled into ``[0, 1]^2`` (aspect kept), rounded for a small JSON."""
    p = np.asarray(points, dtype=np.float64)
    if p.shape[1] < 2:
        p = np.column_stack([p[:, 0], np.zeros(len(p))])
    lo, span = p.min(axis=0), float(np.ptp(p, axis=0).max()) or 1.0
    q = (p - lo) / span
    q += (1.0 - q.max(axis=0)) / 2.0
    return np.round(q, 4).tolist()


def _rounded(values: np.ndarray, digits: int) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), digits) for v in values]
