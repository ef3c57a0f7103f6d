"""Heatmaps as SpRAy's feature vectors: channels summed, sum-pooled to a fixed size, normalised.

Sum pooling keeps the relevance a region holds (average pooling would too, up to a constant);
pooling to a fixed size makes classes of any resolution comparable and the kNN graph cheap.
Each pooled map is scaled to unit Euclidean norm, so distances compare *where* relevance sits,
not how much of it there is (an IG map and an LRP map of one digit differ in total relevance).
CoRelAy's SpRAy example divides each map by its sum instead (``normalize="sum"``): a signed map
(IG, LRP-epsilon) whose positive and negative relevance nearly cancel is then blown up, and one
with a negative sum is flipped, which the L2 norm never does.
"""

from __future__ import annotations

import numpy as np

#: How :func:`heatmap_features` scales each map: to unit L2 norm (lumos) or by its sum (CoRelAy).
NORMALIZATIONS = ("l2", "sum")


def pooling_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The ``(n_out, n_in)`` matrix of 1-D area sum pooling from ``n_in`` cells to ``n_out``.

    Output cell ``i`` covers the input interval ``[i n_in / n_out, (i + 1) n_in / n_out)``; an
    input cell cut by a boundary is split between both sides in proportion to its overlap, so
    every column sums to 1 and the total is kept for any ``n_in``, ``n_out``.
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"pooling sizes must be positive, got {n_in} -> {n_out}")
    edges = np.arange(n_out + 1) * (n_in / n_out)
    left, right = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.minimum(right, cells + 1) - np.maximum(left, cells)
    return np.clip(overlap, 0.0, None)


def sum_pool(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Sum-pool ``(N, H, W)`` maps to ``(N, h, w)``; the sum of every map is kept."""
    if maps.ndim != 3:
        raise ValueError(f"sum_pool takes (N, H, W) maps, got shape {maps.shape}")
    rows = pooling_matrix(maps.shape[1], size[0]).astype(maps.dtype)
    cols = pooling_matrix(maps.shape[2], size[1]).astype(maps.dtype)
    return np.einsum("ih,nhw,jw->nij", rows, maps, cols, optimize=True)


def heatmap_features(attribution: np.ndarray, size: tuple[int, int] | None = (16, 16),
                     normalize: str = "l2") -> np.ndarray:
    """SpRAy's features of ``(N, C, H, W)`` (or ``(N, H, W)``) attributions: ``(N, h * w)``.

    Channels are summed and the maps sum-pooled to ``size`` (``None``: kept at full
    resolution). ``normalize="l2"`` scales each row to unit Euclidean norm (an all-zero map stays
    zero); ``"sum"`` divides each map by its sum, as CoRelAy's SpRAy example does (a map whose
    relevance sums to zero, within 1e-6 of its total absolute relevance, is an error there: it
    has no such scale). float32, C-contiguous.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got "
                         f"{normalize!r}")
    a = channel_maps(attribution)
    if a.ndim != 3:
        raise ValueError("attributions must be shaped (N, C, H, W) or (N, H, W); got shape "
                         f"{np.shape(attribution)}")
    if not np.isfinite(a).all():
        raise ValueError("attributions contain NaN or infinite values")
    pooled = (a if size is None else sum_pool(a, size)).reshape(len(a), -1)
    if normalize == "sum":
        scale = pooled.sum(axis=1, keepdims=True)
        cancels = np.abs(pooled.sum(axis=1, keepdims=True, dtype=np.float64)) <= \
            1e-6 * np.abs(pooled).sum(axis=1, keepdims=True, dtype=np.float64)
        if cancels.any():
            raise ValueError(f"{int(cancels.sum())} heatmap(s) sum to 0 (within 1e-6 of their "
                             "total |relevance|): dividing by the sum would blow them up; "
                             "normalise by the L2 norm instead")
    else:
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        scale = np.where(norm > 0, norm, 1.0)
    return np.ascontiguousarray(pooled / scale, dtype=np.float32)


def channel_maps(attribution: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` float32 maps of ``(N, C, H, W)`` attributions, channels summed."""
    a = np.asarray(attribution, dtype=np.float32)
    return a.sum(axis=1) if a.ndim == 4 else a
