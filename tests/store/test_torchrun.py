"""``torchrun --nproc_per_node=2`` (gloo, CPU) gives the store one process gives, concept
relevances and their references included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from storefix import SRC, make_checkpoint, make_folder, store_arrays

from lumos.cli import main
from lumos.store import open_store


@pytest.mark.slow
def test_two_ranks_equal_one_process(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", per_class=11)  # 33 samples: 5 shards of 7
    ckpt = make_checkpoint(tmp_path)
    args = ["explain-dataset", "--model", str(ckpt), "--dataset", f"folder:{folder}",
            "--method", "lrp:epsilon-plus", "--method", "ig", "--ig-steps", "8",
            "--concepts", "features.4", "--concepts", "classifier.2",
            "--shard-size", "7", "--batch-size", "3", "--workers", "1", "--quiet"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each rank (OMP_NUM_THREADS=1)
    try:
        assert main([*args, "--out", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(threads)
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "-m", "lumos", *args,
                          "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert two.returncode == 0, two.stderr[-3000:]
    want, got = store_arrays(tmp_path / "one"), store_arrays(tmp_path / "two")
    assert got.keys() == want.keys()
    assert "lrp-epsilon-plus.h5/concepts/features.4/relevance" in got
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    # so the references are the same too
    from lumos.crp.analysis import analyse

    refs = [analyse(tmp_path / run, "features.4", heatmaps=False, progress=False)
            for run in ("one", "two")]
    for mode in ("relevance", "activation"):
        np.testing.assert_array_equal(refs[0].references[mode].index,
                                      refs[1].references[mode].index)
    with open_store(tmp_path / "two") as store:
        m = store.manifest
        index = store.arrays("ig")["index"]
    assert list(index) == list(range(33))  # no sample padded in twice, none missing
    assert [s["rank"] for s in m["shards"]] == [0, 1, 0, 1, 0]
    assert m["runs"][0]["world_size"] == 2
