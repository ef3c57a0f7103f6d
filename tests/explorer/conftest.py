"""A small analysed store for the explorer tests (two methods, two classes, planted groups)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "analysis"))

from sprayfix import planted, write_input, write_method

from lumos.analysis import SpraySettings, analyse


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("store")
    maps, _ = planted(120, seed=4)
    label = np.where(np.arange(120) < 70, 1, 2)
    write_method(directory, "ig", maps, label)
    noisy = maps + np.random.default_rng(5).normal(0, 0.2, maps.shape).astype(np.float32)
    write_method(directory, "lrp:epsilon-plus", noisy, label)
    write_input(directory, np.clip(maps, 0, 1), label)
    fast = SpraySettings(cluster_counts=(2, 3), tsne_max=150)
    for key in ("ig", "lrp:epsilon-plus"):
        analyse(directory, key, settings=fast, compare=["ig", "lrp:epsilon-plus"],
                progress=False)
    return directory
