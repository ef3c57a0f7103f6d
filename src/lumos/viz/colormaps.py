"""Colormaps as 255-entry lookup tables, built with numpy only.

Relevance is signed: positive evidence for the class and negative evidence against it must look
different, and zero must look neutral. The table has an odd length so that zero falls exactly on
its centre entry (index 127) in the diverging maps; positive values are red, negative blue:

- ``bwr``: blue - white - red, zero is white; reads well on paper and on a white page.
- ``coldnhot``: the LRP literature's dark-centred map, zero is black, negative runs through blue
  to cyan, positive through red and yellow to white.
- ``reds``: white to dark red, for magnitudes (``mode="absolute"`` / ``"positive"``).
- ``gray``: black to white, for inputs and magnitudes.

A colormap maps values in ``[0, 1]``; :func:`apply` takes values already scaled to that range.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Control points: (position in [0, 1], (r, g, b) in 0..255). Linear interpolation in between.
_POINTS: dict[str, Sequence[tuple[float, tuple[int, int, int]]]] = {
    "bwr": [(0.0, (5, 48, 150)), (0.25, (67, 147, 225)), (0.5, (255, 255, 255)),
            (0.75, (235, 95, 70)), (1.0, (150, 0, 15))],
    "coldnhot": [(0.0, (200, 255, 255)), (0.2, (0, 190, 255)), (0.4, (0, 0, 210)),
                 (0.5, (0, 0, 0)), (0.6, (210, 0, 0)), (0.8, (255, 190, 0)),
                 (1.0, (255, 255, 200))],
    "reds": [(0.0, (255, 255, 255)), (0.5, (245, 110, 80)), (1.0, (120, 0, 10))],
    "gray": [(0.0, (0, 0, 0)), (1.0, (255, 255, 255))],
}

LEVELS = 255
"""Entries per table (odd, so a diverging map has an exact centre)."""

DIVERGING = frozenset({"bwr", "coldnhot"})
"""Names of the maps whose centre means zero."""


def names() -> list[str]:
    """Names accepted by :func:`lut` and :func:`apply`."""
    return sorted(_POINTS)


def lut(name: str) -> np.ndarray:
    """The ``(LEVELS, 3)`` uint8 lookup table of the colormap ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not one of :func:`names`.
    """
    if name not in _POINTS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(names())}")
    positions = np.array([p for p, _ in _POINTS[name]])
    colors = np.array([c for _, c in _POINTS[name]], dtype=np.float64)
    grid = np.linspace(0.0, 1.0, LEVELS)
    table = np.stack([np.interp(grid, positions, colors[:, k]) for k in range(3)], axis=1)
    return np.round(table).astype(np.uint8)


def apply(values: np.ndarray, name: str) -> np.ndarray:
    """Colour ``values`` (any shape, in ``[0, 1]``; outside is clipped) with the map ``name``.

    Returns
    -------
    numpy.ndarray
        uint8 array of shape ``values.shape + (3,)``. NaN values are drawn in the neutral colour
        (the centre of a diverging map, the start of the others), so a bad pixel never looks
        like strong evidence.
    """
    neutral = 0.5 if name in DIVERGING else 0.0
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=neutral)
    index = np.clip(np.round(np.clip(v, 0.0, 1.0) * (LEVELS - 1)), 0, LEVELS - 1).astype(np.intp)
    return lut(name)[index]
