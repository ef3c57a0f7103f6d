"""RelMax at scale: all 5,000 mnist-5k digits, one process vs torchrun vs killed-and-resumed,
and the references against zennit-crp 0.6's ``FeatureVisualization`` (must show 4 of the
concepts issue).

1. ``lumos explain-dataset --model mnist5k-cnn --dataset mnist-5k --split all --target label
   --method lrp:epsilon-plus --concepts features.4`` in one process, then ``lumos concepts``:
   the top-8 references by relevance and by activation of the 32 concepts of the last
   convolution.
2. The same under ``torchrun --nproc_per_node=2`` (gloo, one thread per rank): every stored
   array equal, the same references.
3. The same in one process killed with SIGKILL right after its 4th shard is in place, then
   the same command again: every stored array equal, the same references.
4. zennit-crp's ``FeatureVisualization`` (``ChannelConcept``, EpsilonPlus with Zennit's
   sequential BatchNorm merge, its ``sum_normed`` RelMax and ActMax) on the same 5,000
   inputs and labels, in its own process (``tests/crp/zcrp_worker.py``): per concept the same
   top-8 indices up to ties (scores within 1e-5 of the 8th may be swapped).

    .venv/bin/python bench/crp_relmax.py [--out lumos-out/crp-relmax] [--limit 5000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "crp"), str(ROOT / "tests" / "store")]

#: Kill the process right after the Nth shard is in place (the store's own atomic rename).
KILL = """
import os, re, signal
_real, _n = os.replace, [0]
def _replace(src, dst, *a, **k):
    _real(src, dst, *a, **k)
    if re.search(r"shards/\\d+-\\d+\\.h5$", str(dst)):
        _n[0] += 1
        if _n[0] == int(os.environ["KILL_AT"]):
            os.kill(os.getpid(), signal.SIGKILL)
os.replace = _replace
"""


def _lumos(args: list[str], prefix: str = "", torchrun: bool = False,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1",
            **(env or {})}
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", "-m", "lumos", *args]
    else:
        code = f"{prefix}\nimport sys\nfrom lumos.cli import main\nsys.exit(main(sys.argv[1:]))"
        cmd = [sys.executable, "-c", code, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, check=False)


def _references(store: Path) -> dict[str, np.ndarray]:
    from lumos.crp.analysis import analyse

    a = analyse(store, "features.4", top=8, heatmaps=False, progress=False)
    return {mode: a.references[mode].index for mode in ("relevance", "activation")} | {
        f"{mode} score": a.references[mode].score for mode in ("relevance", "activation")}


def _same_store(a: Path, b: Path) -> str:
    from storefix import store_arrays

    want, got = store_arrays(a), store_arrays(b)
    if want.keys() != got.keys():
        return f"different datasets: {sorted(set(want) ^ set(got))}"
    bad = [k for k in want if not np.array_equal(want[k], got[k])]
    return "every stored array equal" if not bad else f"DIFFERENT: {', '.join(bad)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("lumos-out/crp-relmax"))
    parser.add_argument("--limit", type=int, default=5000)
    args = parser.parse_args(argv)
    import zcrp
    from test_store_concepts import same_up_to_ties

    if zcrp.folder() is None:
        sys.exit("zennit-crp is not installed: run `make zennit-crp`")
    shutil.rmtree(args.out, ignore_errors=True)
    common = ["explain-dataset", "--model", "mnist5k-cnn", "--dataset", "mnist-5k",
              "--split", "all", "--limit", str(args.limit), "--target", "label", "--method",
              "lrp:epsilon-plus", "--concepts", "features.4", "--shard-size", "500",
              "--batch-size", "100", "--workers", "0", "--quiet"]
    ok = True
    times = {}
    for name, kwargs in (("one", {}), ("two", {"torchrun": True})):
        begin = time.perf_counter()
        done = _lumos([*common, "--out", str(args.out / name)], **kwargs)  # type: ignore[arg-type]
        times[name] = time.perf_counter() - begin
        if done.returncode != 0:
            sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
    killed = _lumos([*common, "--out", str(args.out / "killed")], prefix=KILL,
                    env={"KILL_AT": "4"})
    shards = sorted(p.name for p in (args.out / "killed" / "shards").glob("*.h5"))
    resumed = _lumos([*common, "--out", str(args.out / "killed")])
    if killed.returncode != -signal.SIGKILL or resumed.returncode != 0:
        sys.exit(f"kill/resume failed: {killed.returncode} {resumed.stderr[-2000:]}")
    refs = {name: _references(args.out / name) for name in ("one", "two", "killed")}
    print(f"{args.limit} digits, features.4 (32 concepts), top-8 references: one process "
          f"{times['one']:.0f} s, torchrun --nproc_per_node=2 {times['two']:.0f} s")
    for name, what in (("two", "torchrun == one process"),
                       ("killed", f"SIGKILL after {len(shards)} shards + resume == "
                                  "uninterrupted")):
        same = _same_store(args.out / "one", args.out / name)
        equal = all(np.array_equal(refs["one"][k], refs[name][k]) for k in refs["one"])
        print(f"  {what}: {same}; references {'equal' if equal else 'DIFFERENT'}")
        ok &= same.startswith("every") and equal
    from lumos.models.zoo import mnist5k_cnn
    from lumos.store import open_store

    with open_store(args.out / "one") as store:
        data = store.arrays(None, ("data",))["data"]
        label = store.arrays("lrp:epsilon-plus", ("label",))["label"]
    begin = time.perf_counter()
    theirs = zcrp.run(mnist5k_cnn(), [{
        "kind": "fv", "x": torch.from_numpy(data), "y": torch.from_numpy(label.astype(np.int64)),
        "layers": ["features.4"], "composite": "EpsilonPlus", "canonizer": "sequential",
        "batch_size": 100}])[0]["features.4"]
    seconds = time.perf_counter() - begin
    for mode, key in (("relevance", "rel"), ("activation", "act")):
        want = theirs[f"{key}_index"].numpy()[:8].T
        mine, scores = refs["one"][mode], refs["one"][f"{mode} score"]
        agree = [c for c in range(len(mine)) if same_up_to_ties(mine[c], want[c], scores[c])]
        exact = sum(int(np.array_equal(mine[c], want[c])) for c in range(len(mine)))
        print(f"  zennit-crp FeatureVisualization ({seconds:.0f} s) {mode}: {len(agree)} of "
              f"{len(mine)} concepts the same top-8 up to ties ({exact} in the same order)")
        ok &= len(agree) == len(mine)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
