"""Glocal explanations: for each sample, its most relevant concepts of one layer, each with its
conditional heatmap and, where a store's concept analysis is given, its reference samples.

Local (where in this image) and global (what the concept is, shown by the dataset samples that
express it most) in one result: :func:`glocal` returns a :class:`Glocal`; ``lumos explain
--concepts LAYER`` renders it as an HTML page.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lumos.attribution.targets import TargetLike
from lumos.crp.attribution import CRP


@dataclass(frozen=True)
class Reference:
    """One reference sample of a concept, from a store.

    Attributes
    ----------
    index:
        Its position in the store's dataset.
    image:
        The stored model input ``(C, H, W)`` (as preprocessed), cropped to ``box``.
    heatmap:
        Its conditional heatmap for the concept ``(h, w)``, cropped alike (None where
        ``lumos concepts`` computed none for the concept).
    box:
        ``(top, left, bottom, right)`` of the crop: where the concept is relevant.
    """

    index: int
    image: np.ndarray
    heatmap: np.ndarray | None
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Glocal:
    """The ``T`` most relevant concepts of ``layer`` for each of ``N`` samples.

    Attributes
    ----------
    layer:
        The concept layer (module path).
    concepts:
        ``(N, T)`` channel indices, most relevant first (by relevance, signed).
    relevance:
        ``(N, T)`` each concept's relevance for the explained output.
    share:
        ``(N, T)`` that relevance over the sum of ``|relevance|`` of all concepts of the layer.
    heatmaps:
        ``(N, T, *input)`` each concept's conditional heatmap.
    references:
        Concept -> its reference samples (by relevance, best first), for the concepts in
        ``concepts`` when a store was given (else empty).
    """

    layer: str
    concepts: Tensor
    relevance: Tensor
    share: Tensor
    heatmaps: Tensor
    references: dict[int, list[Reference]] = field(default_factory=dict)


def glocal(crp: CRP, inputs: Tensor, target: TargetLike, layer: str, top: int = 6,
           store: str | os.PathLike[str] | None = None, method: str | None = None,
           references: int = 6, batch_size: int | None = None) -> Glocal:
    """The ``top`` most relevant concepts of ``layer`` for each sample, with heatmaps.

    Parameters
    ----------
    crp : CRP
        The concept attributor (its model and composite).
    inputs, target :
        As for :meth:`CRP.attribute`.
    layer : str
        The concept layer.
    top : int
        Concepts per sample.
    store : path, optional
        A store folder with ``lumos concepts DIR --layer LAYER`` run on it: the concepts'
        RelMax references come from there (``method``: its LRP method key, default the one
        analysed).
    references : int
        References per concept (at most what the analysis holds).
    """
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    x = inputs
    rel = crp.concept_relevance(x, target, layers=layer, batch_size=batch_size)[layer]
    k = min(top, rel.shape[1])
    values, concepts = rel.topk(k, dim=1)
    share = values / rel.abs().sum(1, keepdim=True).clamp_min(torch.finfo(rel.dtype).tiny)
    heat = x.new_zeros((len(x), k, *x.shape[1:]))
    for i in range(len(x)):  # each sample under its own concepts
        heat[i] = crp.attribute(x[i:i + 1], _row(target, i), layer=layer,
                                concepts=concepts[i].tolist(), batch_size=batch_size)[0]
    refs = ({} if store is None else
            read_references(store, layer, sorted(set(concepts.flatten().tolist())), method,
                            references))
    return Glocal(layer, concepts, values, share, heat, refs)


def _row(target: TargetLike, i: int) -> TargetLike:
    if isinstance(target, Tensor) and target.dim() > 0:
        return target[i:i + 1]
    if isinstance(target, (list, tuple)):
        return [target[i]]
    return target


def read_references(store: str | os.PathLike[str], layer: str, concepts: list[int],
                    method: str | None = None, count: int = 6) -> dict[int, list[Reference]]:
    """RelMax references of ``concepts`` of ``layer`` from a store's concept analysis.

    Raises
    ------
    FileNotFoundError
        The store has no concept analysis (run ``lumos concepts DIR --layer LAYER``).
    KeyError
        The analysis has no such layer or method.
    """
    import h5py

    from lumos.crp import files

    folder = Path(store)
    found = sorted(folder.glob(f"{files.PREFIX}*.h5"))
    if method is not None:
        found = [files.concepts_file(folder, method)]
    found = [p for p in found if p.is_file()]
    if not found:
        raise FileNotFoundError(f"{folder} has no concept analysis"
                                f"{'' if method is None else ' of ' + method}: run `lumos "
                                f"concepts {folder} --layer {layer}` first")
    layers = files.read_all(found[0], heatmaps=False)
    if layer not in layers:
        raise KeyError(f"{found[0]} analyses {', '.join(layers) or 'no layer'}, not {layer!r}")
    a = layers[layer]
    refs = a.references["relevance"]
    out: dict[int, list[Reference]] = {}
    with h5py.File(folder / "input.h5", "r") as inp:
        data = inp["data"]
        for c in concepts:
            if not 0 <= c < a.channels:
                raise KeyError(f"layer {layer!r} has {a.channels} concepts, not {c}")
            got = []
            for j in range(min(count, refs.row.shape[1])):
                row = int(refs.row[c, j])
                if row < 0:
                    break
                top, left, bottom, right = (int(v) for v in refs.box[c, j])
                heat = (files.read_heatmap(found[0], layer, ("relmax",), (c, j))
                        if c in a.heatmap_concepts else None)
                got.append(Reference(
                    int(refs.index[c, j]), np.asarray(data[row])[:, top:bottom, left:right],
                    None if heat is None else heat[top:bottom, left:right],
                    (top, left, bottom, right)))
            out[c] = got
    return out
