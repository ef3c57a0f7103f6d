"""How two explanation methods agree on a class, and where their relevance sits.

- :func:`rank_correlation`: per sample, Spearman's rank correlation of two heatmaps over the
  pixels (channels summed): 1 when both order the pixels alike, whatever their scales.
- :func:`border_fraction`: per sample, the share of absolute relevance in the outer ring of
  the image (``width`` pixels): a model that looks at a frame, a tag or a watermark in a corner
  puts much relevance there.
- :func:`per_cluster`: the mean of a per-sample value within each cluster.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho between ``a[i]`` and ``b[i]`` over pixels, for ``(N, H, W)`` maps.

    Ties get their average rank; a constant map has no rank order and gives NaN.
    """
    if a.shape != b.shape:
        raise ValueError(f"maps to compare differ in shape: {a.shape} and {b.shape}")
    ra = rankdata(a.reshape(len(a), -1), axis=1)
    rb = rankdata(b.reshape(len(b), -1), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra * ra).sum(axis=1) * (rb * rb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(axis=1) / denom, np.nan)


def border_mask(shape: tuple[int, int], width: int) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the outer ring ``width`` pixels wide."""
    h, w = shape
    if not 0 < 2 * width < min(h, w):
        raise ValueError(f"border width {width} does not fit a {h}x{w} image")
    mask = np.ones((h, w), dtype=bool)
    mask[width:h - width, width:w - width] = False
    return mask


def border_fraction(maps: np.ndarray, width: int) -> np.ndarray:
    """Per sample, ``sum |R| on the border ring / sum |R|`` of ``(N, H, W)`` maps (0 if no
    relevance at all)."""
    mag = np.abs(np.asarray(maps, dtype=np.float64))
    total = mag.reshape(len(mag), -1).sum(axis=1)
    ring = mag[:, border_mask(mag.shape[1:], width)].sum(axis=1)
    return np.where(total > 0, ring / np.where(total > 0, total, 1.0), 0.0)


def per_cluster(values: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """The mean of ``values`` (NaN ignored) within each cluster label."""
    out = {}
    for c in np.unique(labels):
        v = values[labels == c]
        v = v[np.isfinite(v)]
        out[int(c)] = float(v.mean()) if len(v) else float("nan")
    return out


def default_border(shape: tuple[int, int]) -> int:
    """The ring width used by default: an eighth of the smaller side, at least one pixel."""
    return max(1, min(shape) // 8)
