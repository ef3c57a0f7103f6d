"""mnist-5k through the store with IG and LRP ε+: the stored maps are the APIs' (issue #12, 1).

The suite checks the first 100 digits of split ``all``; the full 5,000
run is ``bench/store_mnist5k.py`` (same check, numbers in the README).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import lumos


@pytest.mark.slow
def test_mnist5k_store_equals_the_apis(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "store_mnist5k", Path(__file__).resolve().parents[2] / "bench" / "store_mnist5k.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    store = lumos.explain_dataset("mnist5k-cnn", "mnist-5k", ["ig", "lrp:epsilon-plus"],
                                  tmp_path, split="all", limit=100, shard_size=50,
                                  batch_size=25, progress=False)
    assert len(store) == 100 and store.manifest["dataset"]["size"] == 5000
    worst = bench.check(store)
    assert worst["lrp:epsilon-plus"] <= 1e-6
    assert worst["ig"] <= 1e-6 and worst["ig delta"] <= 1e-6 and worst["ig error"] <= 1e-6
    assert "error" in store.arrays("ig")  # adaptive IG: each map's estimated error is stored
    lrp = store.arrays("lrp:epsilon-plus")
    assert (lrp["prediction"].argmax(1) == lrp["target"]).all()
    assert np.array_equal(lrp["index"], np.arange(100))
