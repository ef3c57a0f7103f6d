"""SIGKILL at any moment, then the same command again: the store equals an uninterrupted run
(concept relevances included).

The kills come from outside the library: the child interpreter wraps ``os.replace`` (how every
shard and final file is put in place) and kills itself at a chosen moment.
"""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from storefix import lumos_cmd, make_checkpoint, make_folder, store_arrays

from lumos.cli import main
from lumos.store import open_store

# kill before the Nth rename onto a name matching PATTERN (mid-write: the temp file is complete
# but not in place), or right after it (between shards).
_INJECT = """
import os, re, signal
_real, _n = os.replace, [0]
_mode, _pat, _at = os.environ['KILL_MODE'], os.environ['KILL_PATTERN'], int(os.environ['KILL_AT'])
def _replace(src, dst, *a, **k):
    hit = re.search(_pat, str(dst)) is not None
    if hit:
        _n[0] += 1
    if hit and _n[0] == _at and _mode == 'before':
        os.kill(os.getpid(), signal.SIGKILL)
    _real(src, dst, *a, **k)
    if hit and _n[0] == _at and _mode == 'after':
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = _replace
"""


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("resume")
    folder = make_folder(root / "images", per_class=10)
    ckpt = make_checkpoint(root)
    args = ["explain-dataset", "--model", str(ckpt), "--dataset", f"folder:{folder}",
            "--method", "lrp:epsilon-plus", "--method", "gradient", "--shard-size", "6",
            "--concepts", "features.4", "--batch-size", "4", "--workers", "0", "--quiet"]
    ref = root / "reference"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the child interpreters (OMP_NUM_THREADS=1)
    try:
        assert main([*args, "--out", str(ref)]) == 0
    finally:
        torch.set_num_threads(threads)
    return args, store_arrays(ref)


def _kill(args: list[str], out: Path, mode: str, pattern: str, at: int) -> list[str]:
    killed = lumos_cmd(*args, "--out", str(out), prefix=_INJECT,
                       env={"KILL_MODE": mode, "KILL_PATTERN": pattern, "KILL_AT": str(at)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    return sorted(p.name for p in (out / "shards").glob("*.h5"))


@pytest.mark.slow
def test_killed_runs_resume_to_the_same_store(job: tuple[list[str], dict[str, np.ndarray]],
                                              tmp_path: Path) -> None:
    args, want = job
    out = tmp_path / "store"
    shard = r"shards/\d+-\d+\.h5$"
    # run 1: killed while writing its 2nd shard (the temp file is full but not in place)
    assert len(_kill(args, out, "before", shard, 2)) == 1
    # run 2: resumes, killed between shards, right after its 2nd shard is in place
    after_2 = _kill(args, out, "after", shard, 2)
    assert len(after_2) == 3
    # run 3: computes the last 2 shards, killed while the final files are assembled
    assert len(_kill(args, out, "before", r"/gradient\.h5$", 1)) == 5
    resumed = lumos_cmd(*args, "--out", str(out))  # run 4 only assembles
    assert resumed.returncode == 0, resumed.stderr
    got = store_arrays(out)
    assert got.keys() == want.keys()
    assert "lrp-epsilon-plus.h5/concepts/features.4/relevance" in got
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    assert not list(out.rglob("*.part")) and not (out / "shards").exists()
    with open_store(out) as store:
        m = store.manifest
    ranges = [(s["start"], s["stop"]) for s in m["shards"]]
    assert ranges == [(a, min(a + 6, 30)) for a in range(0, 30, 6)]  # each shard once
    assert [s["run"] for s in m["shards"]] == [1, 2, 2, 3, 3]  # none computed twice
    assert [r["shards_computed"] for r in m["runs"]] == [5, 4, 2, 0]
