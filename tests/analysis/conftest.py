"""Fixtures for the analysis tests: store directories with planted heatmap clusters."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sprayfix import planted, write_input, write_method


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """Two methods over 90 samples of class 3 and 60 of class 5 (3 planted groups each);
    the second method is the first plus noise. Returns the directory and the groups."""
    maps, truth = planted(150, seed=1)
    label = np.where(np.arange(150) < 90, 3, 5)
    rng = np.random.default_rng(2)
    write_method(tmp_path, "ig", maps, label)
    order = rng.permutation(150)  # the other method stores the samples in another order
    noisy = maps + rng.normal(0, 0.2, maps.shape).astype(np.float32)
    write_method(tmp_path, "lrp", noisy[order], label[order], index=order)
    write_input(tmp_path, np.clip(maps, 0, 1), label)
    return tmp_path, truth
