"""Tiny store directories written with h5py, in the layout of ``lumos explain-dataset``."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

SPOTS = ((2, 2), (2, 16), (16, 9))  # top-left corners of the planted 6x6 relevance blobs


def planted(n: int, size: int = 24, channels: int = 1, groups: int = 3, noise: float = 0.3,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(N, C, size, size)`` heatmaps with relevance in one of ``groups`` places, and the
    group of each."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, groups, n)
    maps = rng.normal(0.0, noise, (n, channels, size, size)).astype(np.float32)
    for g in range(groups):
        r, c = SPOTS[g]
        maps[truth == g, :, r:r + 6, c:c + 6] += 1.0
    return maps, truth


def write_method(directory: Path, key: str, attribution: np.ndarray, label: np.ndarray,
                 index: np.ndarray | None = None, classes: int = 10) -> Path:
    """``DIR/<key>.h5`` with attribution, label, index and a one-hot prediction."""
    directory.mkdir(parents=True, exist_ok=True)
    n = len(attribution)
    path = directory / f"{key}.h5"
    with h5py.File(path, "w") as f:
        f["attribution"] = attribution
        f["label"] = label.astype(np.int64)
        f["index"] = np.arange(n) if index is None else index
        f["prediction"] = np.eye(classes, dtype=np.float32)[label % classes]
    return path


def write_input(directory: Path, data: np.ndarray, label: np.ndarray) -> Path:
    """``DIR/input.h5`` with data and label."""
    path = directory / "input.h5"
    with h5py.File(path, "w") as f:
        f["data"] = data
        f["label"] = label.astype(np.int64)
    return path
