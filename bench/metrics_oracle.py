"""Oracle: every lumos metric against Quantus 0.6 on the same inputs, per sample.

The trained mnist-5k CNN, 64 held-out digits, three attributions (IG, LRP-epsilon-plus, a
random map), the true class as target. Deterministic metrics must agree to 1e-5 per sample
(relative to the value where it exceeds 1); stochastic ones get the same perturbations on both
sides (lumos draws them; Quantus replays them through its own ``perturb_func`` or its module's
``np.random``) and must agree as deterministic ones do. Where Quantus 0.6 is defective, it runs
with the defect worked around (the note says how) and lumos computes what the paper defines.
Quantus's batch-wide ``normalise`` is replaced by a per-sample maximum (lumos's convention).

Quantus is GPL: never a lumos dependency. It needs its own virtual environment::

    make .venv-quantus/.installed                 # torch + quantus==0.6.0 + lumos (-e)
    .venv-quantus/bin/python bench/metrics_oracle.py [--n 64] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))
from _oracle_cases import CASES, Setup


def load(n: int) -> Setup:
    import lumos
    from lumos.data.samples import mnist5k
    from lumos.lrp import composites
    from lumos.models.zoo import mnist5k_cnn

    model = mnist5k_cnn().eval()
    x, y = mnist5k("test")
    x, y = x[:n].contiguous(), y[:n].clone()
    ig = lumos.IntegratedGradients(model)

    def ig_fn(m: nn.Module, xx: Tensor, t: Tensor) -> Tensor:
        return lumos.IntegratedGradients(m).attribute(xx, target=t, n_steps=16)

    def lrp_fn(m: nn.Module, xx: Tensor, t: Tensor) -> Tensor:
        return lumos.LRP(m, composite=composites.EpsilonPlus()).attribute(xx, target=t)

    def random_fn(m: nn.Module, xx: Tensor, t: Tensor) -> Tensor:
        # "random" yet a function of the input, so both sides get the same map however they
        # batch their calls
        pos = torch.arange(xx[0].numel(), dtype=torch.float64).reshape(xx.shape[1:])
        return torch.frac(torch.sin(xx.double() * 7919.0 + pos) * 43758.5453).float()

    explainers = {"IG": ig_fn, "LRP": lrp_fn, "random": random_fn}
    attributions = {k: fn(model, x, y).detach() for k, fn in explainers.items()}
    del ig
    return Setup(model, x, y, attributions, explainers)


def agree(ours: Any, theirs: Any, tol: float) -> tuple[int, float, bool]:
    """Compared entries, largest difference (scaled where |value| > 1), whether all agree."""
    a = np.asarray(torch.as_tensor(ours).double().cpu().numpy(), dtype=np.float64).ravel()
    b = np.asarray(theirs, dtype=np.float64).ravel()
    if a.shape != b.shape:
        return 0, math.inf, False
    both_nan = np.isnan(a) & np.isnan(b)
    diff = np.abs(a - b) / np.maximum(1.0, np.abs(b))
    diff[both_nan] = 0.0
    worst = float(np.nanmax(np.where(np.isnan(diff), np.inf, diff))) if diff.size else 0.0
    return int(a.size), worst, worst <= tol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, help="metric names to run")
    args = parser.parse_args()
    try:
        import quantus
    except ImportError:
        print("Quantus is not installed here: make .venv-quantus/.installed, then run "
              ".venv-quantus/bin/python bench/metrics_oracle.py (GPL: never a lumos "
              "dependency)")
        return
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)  # Quantus's parameter advice
    setup = load(args.n)
    print(f"Quantus {quantus.__version__ if hasattr(quantus, '__version__') else '0.6'}, numpy "
          f"{np.__version__}, torch {torch.__version__}; trained mnist5k_cnn, {args.n} held-out "
          f"digits, IG / LRP-eps+ / random; {args.threads} torch thread(s)")
    print(f"{'metric':34s} {'method':7s} {'n':>5s} {'max |d|':>9s}  result  note")
    passed = total = 0
    begin = time.perf_counter()
    for case in CASES:
        if args.only and case.name not in args.only:
            continue
        for method in case.methods:
            start = time.perf_counter()
            try:
                ours, theirs = case.run(setup, method)
                count, worst, ok = agree(ours, theirs, case.tol)
                status = "PASS" if ok else "FAIL"
            except Exception as err:  # report and go on: one table for every metric
                count, worst, status = 0, math.nan, f"ERROR {type(err).__name__}: {err}"[:90]
            total += 1
            passed += status == "PASS"
            print(f"{case.name:34s} {method:7s} {count:5d} {worst:9.2e}  {status:6s}  "
                  f"{case.note} ({time.perf_counter() - start:.1f} s)", flush=True)
    print(f"\n{passed} of {total} comparisons agree to {CASES[0].tol:g}; "
          f"{time.perf_counter() - begin:.0f} s")


Runner = Callable[[Setup, str], tuple[Any, Any]]

if __name__ == "__main__":
    main()
