"""Where a concept is relevant in a sample: the box a reference is cropped to.

For a convolution's channel the box comes from the conditional heatmap at the input: the
smallest set of pixels holding half of its positive relevance, their bounding box, padded.
For a feature of a transformer's token stream it comes from the tokens: the tokens holding
half of the concept's positive relevance at that layer, and the box of their image patches
(so a ViT's reference is cut along its own patch grid). Boxes are ``(top, left, bottom,
right)`` in input pixels, bottom and right exclusive.
"""

from __future__ import annotations

import math

import numpy as np

#: Share of the positive relevance the box must hold.
MASS = 0.5
Box = tuple[int, int, int, int]


def _strongest(values: np.ndarray, mass: float) -> np.ndarray:
    """Mask of the fewest entries that hold ``mass`` of the positive part of ``values``
    (of ``|values|`` when nothing is positive; all entries when everything is zero)."""
    v = np.clip(values, 0.0, None)
    if not v.any():
        v = np.abs(values)
    if not v.any():
        return np.ones(values.shape, dtype=bool)
    flat = v.ravel()
    order = np.argsort(-flat, kind="stable")
    cum = np.cumsum(flat[order])
    count = int(np.searchsorted(cum, mass * cum[-1])) + 1
    mask = np.zeros(flat.shape, dtype=bool)
    mask[order[:count]] = True
    return mask.reshape(values.shape)


def _grow(lo: int, hi: int, size: int, least: int) -> tuple[int, int]:
    """``[lo, hi)`` widened around its centre to at least ``least``, kept inside ``size``."""
    if hi - lo >= least:
        return lo, hi
    lo = max(0, (lo + hi - least) // 2)
    hi = min(size, lo + least)
    return max(0, hi - least), hi


def pixel_box(heatmap: np.ndarray, mass: float = MASS, pad: float = 1 / 16,
              least: float = 1 / 4) -> Box:
    """Box of the pixels of an ``(H, W)`` (or ``(C, H, W)``, channels summed) heatmap that
    hold ``mass`` of its positive relevance, padded by ``pad`` of the side and at least
    ``least`` of the side long."""
    h = np.asarray(heatmap, dtype=np.float64)
    h = h.sum(axis=0) if h.ndim == 3 else h
    height, width = h.shape
    rows, cols = np.nonzero(_strongest(h, mass))
    py, px = math.ceil(height * pad), math.ceil(width * pad)
    top, bottom = max(0, int(rows.min()) - py), min(height, int(rows.max()) + 1 + py)
    left, right = max(0, int(cols.min()) - px), min(width, int(cols.max()) + 1 + px)
    top, bottom = _grow(top, bottom, height, math.ceil(height * least))
    left, right = _grow(left, right, width, math.ceil(width * least))
    return top, left, bottom, right


def patch_grid(tokens: int, height: int, width: int) -> tuple[int, int, int] | None:
    """``(leading tokens, rows, columns)`` of square patches that ``tokens`` tokens of an
    ``height x width`` image can be (a class token and registers lead), or None."""
    for lead in range(0, min(tokens, 9)):
        n = tokens - lead
        for side in range(1, min(height, width) + 1):
            if height % side or width % side:
                continue
            if (height // side) * (width // side) == n:
                return lead, height // side, width // side
    return None


def token_box(relevance: np.ndarray, height: int, width: int, mass: float = MASS) -> Box | None:
    """Box of the image patches of the tokens holding ``mass`` of a concept's positive
    relevance (``relevance``: one value per token), or None when the tokens do not form a
    patch grid of the image."""
    r = np.asarray(relevance, dtype=np.float64).ravel()
    grid = patch_grid(len(r), height, width)
    if grid is None:
        return None
    lead, gh, gw = grid
    rows, cols = np.nonzero(_strongest(r[lead:].reshape(gh, gw), mass))
    ph, pw = height // gh, width // gw
    return (int(rows.min()) * ph, int(cols.min()) * pw, (int(rows.max()) + 1) * ph,
            (int(cols.max()) + 1) * pw)
