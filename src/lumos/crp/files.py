"""The concept analysis file of a store: ``DIR/concepts-<method stem>.h5``.

One group per analysed layer (its module path), written by ``lumos concepts`` and read by the
explorer and :func:`lumos.crp.read_analysis`::

    <layer>/relmax/row (C, K)          each concept's top-K rows of the store by relevance
                                       (-1 where the store has fewer than K samples)
    <layer>/relmax/index (C, K)        their dataset positions (the store's ``index``)
    <layer>/relmax/score (C, K)        the ranking score (see the ``settings`` attribute)
    <layer>/relmax/heatmap (C, K, H, W)  float16, each reference's conditional heatmap for its
                                       concept, input channels summed (only for the concepts
                                       in ``<layer>/heatmap_concepts``)
    <layer>/relmax/box (C, K, 4)       the crop box (top, left, bottom, right) of each reference
    <layer>/actmax/...                 the same by activation
    <layer>/mean_relevance (C,)        each concept's mean relevance over the store
    <layer>/class_relevance (L, C)     and per target class (rows: class indices 0..L-1)
    <layer>/samples/top (N, T)         per row of the store its T most relevant concepts
    <layer>/samples/share (N, T)       their relevance divided by the row's sum of |relevance|
    <layer>/samples/heatmap (N, T', h, w)  float16, conditional heatmaps of each row's first T'
                                       concepts (only with ``--sample-heatmaps``)

Attributes: ``method`` on the file; on each layer group ``settings`` (JSON: top, normalize,
reduce, mass), ``channels``, ``token_layer`` and ``heatmap_concepts`` (the concepts whose
reference heatmaps were computed).

A separate file, not groups of ``analysis-<stem>.h5``: ViRelAy reads every top-level group
of an analysis file as a class.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lumos.atomic import atomic_file
from lumos.store.layout import method_stem

PREFIX = "concepts-"
MODES = {"relevance": "relmax", "activation": "actmax"}


def concepts_file(folder: str | os.PathLike[str], key: str) -> Path:
    """``DIR/concepts-<stem>.h5`` of method ``key``."""
    return Path(folder) / f"{PREFIX}{method_stem(key)}.h5"


@dataclass
class References:
    """One mode's references (RelMax or ActMax) of every concept of a layer."""

    row: np.ndarray
    index: np.ndarray
    score: np.ndarray
    box: np.ndarray
    heatmap: np.ndarray | None = None


@dataclass
class ConceptAnalysis:
    """The concept analysis of one layer (see the module docstring for the arrays)."""

    layer: str
    method: str
    settings: dict[str, Any]
    channels: int
    token_layer: bool
    heatmap_concepts: np.ndarray
    references: dict[str, References]
    mean_relevance: np.ndarray
    class_relevance: np.ndarray
    sample_top: np.ndarray
    sample_share: np.ndarray
    sample_heatmap: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def top(self, concept: int, mode: str = "relevance") -> list[int]:
        """Dataset positions of ``concept``'s references by ``mode``, best first."""
        refs = self.references[mode]
        return [int(i) for i, r in zip(refs.index[concept], refs.row[concept], strict=True)
                if r >= 0]


def write_layer(path: Path, method: str, analysis: ConceptAnalysis) -> Path:
    """Write (or replace) one layer's group of a concepts file, keeping its other layers."""
    import h5py

    old: dict[str, ConceptAnalysis] = {}
    if path.is_file():
        old = {k: v for k, v in read_all(path).items() if k != analysis.layer}
    with atomic_file(path, "w+b") as handle, h5py.File(handle, "w") as f:
        f.attrs["method"] = method
        for a in [*old.values(), analysis]:
            _write(f.create_group(a.layer), a)
    return path


def _write(g: Any, a: ConceptAnalysis) -> None:
    g.attrs["settings"] = json.dumps(a.settings)
    g.attrs["channels"] = int(a.channels)
    g.attrs["token_layer"] = bool(a.token_layer)
    g.attrs["heatmap_concepts"] = np.asarray(a.heatmap_concepts, dtype=np.int64)
    for mode, refs in a.references.items():
        h = g.create_group(MODES[mode])
        h["row"] = refs.row.astype(np.int64)
        h["index"] = refs.index.astype(np.int64)
        h["score"] = refs.score.astype(np.float64)
        h["box"] = refs.box.astype(np.int32)
        if refs.heatmap is not None:
            h.create_dataset("heatmap", data=refs.heatmap.astype(np.float16),
                             compression="gzip", compression_opts=1)
    g["mean_relevance"] = a.mean_relevance.astype(np.float64)
    g["class_relevance"] = a.class_relevance.astype(np.float64)
    s = g.create_group("samples")
    s["top"] = a.sample_top.astype(np.int32)
    s["share"] = a.sample_share.astype(np.float32)
    if a.sample_heatmap is not None:
        s.create_dataset("heatmap", data=a.sample_heatmap.astype(np.float16),
                         compression="gzip", compression_opts=1)


def read_all(path: str | os.PathLike[str], heatmaps: bool = True
             ) -> dict[str, ConceptAnalysis]:
    """Every layer of a concepts file (``heatmaps=False``: without the heatmap arrays, which
    :func:`read_heatmap` reads one at a time)."""
    import h5py

    with h5py.File(path, "r") as f:
        method = str(f.attrs.get("method", ""))
        return {layer: _read(g, layer, method, heatmaps) for layer, g in f.items()}


def read_heatmap(path: str | os.PathLike[str], layer: str, where: tuple[str, ...],
                 at: tuple[int, ...]) -> np.ndarray | None:
    """One heatmap: ``where`` = ``("relmax",)``, ``("actmax",)`` or ``("samples",)``, ``at`` its
    index (concept, k) or (row, t); None when the file has none there."""
    import h5py

    with h5py.File(path, "r") as f:
        name = "/".join((layer, *where, "heatmap"))
        if layer not in f or name not in f:
            return None
        data = f[name]
        if any(not 0 <= i < n for i, n in zip(at, data.shape, strict=False)):
            return None
        return np.asarray(data[at], dtype=np.float32)


def _read(g: Any, layer: str, method: str, heatmaps: bool = True) -> ConceptAnalysis:
    refs = {}
    for mode, name in MODES.items():
        if name in g:
            h = g[name]
            refs[mode] = References(h["row"][()], h["index"][()], h["score"][()],
                                    h["box"][()],
                                    h["heatmap"][()] if heatmaps and "heatmap" in h else None)
    s = g["samples"]
    return ConceptAnalysis(
        layer=layer, method=method, settings=json.loads(g.attrs["settings"]),
        channels=int(g.attrs["channels"]), token_layer=bool(g.attrs["token_layer"]),
        heatmap_concepts=np.asarray(g.attrs["heatmap_concepts"], dtype=np.int64),
        references=refs, mean_relevance=g["mean_relevance"][()],
        class_relevance=g["class_relevance"][()], sample_top=s["top"][()],
        sample_share=s["share"][()],
        sample_heatmap=s["heatmap"][()] if heatmaps and "heatmap" in s else None,
        extra={"sample_heatmaps": int(s["heatmap"].shape[1]) if "heatmap" in s else 0})
