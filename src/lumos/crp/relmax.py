"""Relevance and activation maximisation: each concept's reference samples over a dataset.

A concept's *references* are the samples where it scores highest: by relevance (RelMax: the
samples whose decision the concept carried most) or by activation (ActMax: where the channel
responds most, whether or not the decision used it). Scores come per sample and channel from
the store (:mod:`lumos.store.concepts`): a sum over the channel's positions (``reduce="sum"``)
or the largest value at one position (``"max"``), by default divided by the sum of the
absolute scores of all channels of the sample (``normalize="abs"``: the concept's share of the
sample's relevance). These defaults are zennit-crp's ``FeatureVisualization``'s.

:func:`top_k` streams over row blocks, so a dataset of any size needs memory for one block and
the running top ``k`` only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

NORMALIZE = ("abs", "none")
REDUCE = ("sum", "max")
MODES = ("relevance", "activation")


def stat_name(mode: str, reduce: str) -> str:
    """The store's statistic for a mode and a reduction (``relevance``, ``activation_max``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if reduce not in REDUCE:
        raise ValueError(f"reduce must be one of {', '.join(REDUCE)}, got {reduce!r}")
    return mode if reduce == "sum" else f"{mode}_max"


def scores(values: np.ndarray, normalize: str = "abs") -> np.ndarray:
    """``(N, C)`` scores: ``values`` as they are, or divided per row by the sum of their
    absolute values (``abs``; a row of zeros stays zero)."""
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZE)}, got {normalize!r}")
    v = np.asarray(values, dtype=np.float64)
    if normalize == "none":
        return v
    return v / (np.abs(v).sum(axis=1, keepdims=True) + 1e-10)


@dataclass
class TopK:
    """Per concept its ``k`` best rows, best first: ``rows (C, k)`` and their ``values``
    (``-inf`` and row ``-1`` where the dataset has fewer than ``k`` rows)."""

    rows: np.ndarray
    values: np.ndarray


def top_k(blocks: Iterable[tuple[int, np.ndarray]], k: int, normalize: str = "abs") -> TopK:
    """The ``k`` highest-scoring rows of every column over ``(first row, (B, C) values)``
    blocks. Equal scores keep the lower row first."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    best_rows: np.ndarray | None = None
    best_vals: np.ndarray | None = None
    for start, block in blocks:
        s = scores(block, normalize)
        rows = np.broadcast_to(np.arange(start, start + len(s))[:, None], s.shape)
        if best_rows is not None and best_vals is not None:
            s = np.concatenate([best_vals.T, s])
            rows = np.concatenate([best_rows.T, rows])
        best_rows, best_vals = _best(rows, s, k)
    if best_rows is None or best_vals is None:
        raise ValueError("no rows to rank")
    missing = k - best_rows.shape[1]
    if missing > 0:
        best_rows = np.pad(best_rows, ((0, 0), (0, missing)), constant_values=-1)
        best_vals = np.pad(best_vals, ((0, 0), (0, missing)), constant_values=-np.inf)
    return TopK(best_rows, best_vals)


def _best(rows: np.ndarray, s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(C, min(k, n))`` rows and scores of the best entries of each column of ``s``."""
    # sort by score descending, then row ascending (lexsort: the last key is the primary)
    order = np.lexsort((rows, -s), axis=0)[:k]
    return np.take_along_axis(rows, order, 0).T.copy(), np.take_along_axis(s, order, 0).T.copy()
