"""Cost per gradient evaluation of IG on ResNet-18: lumos and Captum against plain gradients.

ratio = time(IG) / (evaluations per sample x time(one batched plain gradient of the same
batch)), on torchvision ResNet-18 (random weights), batch 4, 224x224, CPU, 2 threads. Rows:
``attribute`` with ``n_steps`` (lumos and Captum) and adaptive ``explain`` with its map-error
estimate, run with ``tolerance=0`` so that it refines the map until ``max_steps = n_steps + 1``
evaluations per sample (9 initial nodes, then 8 more: two rounds, with the estimate computed
after each). ResNet-18's BatchNorm statistics are taken from random inputs first: at init the
network is positively homogeneous, its gradient constant along every path from zero, and the
adaptive loop would only chase a rounding-level completeness gap two nodes per round.
The timings are interleaved repetition by repetition and medians are reported.
lumos must stay <= 1.05 in both modes.
Both libraries run with their defaults (lumos: ``internal_batch_size="auto"``, which chunks the
``n_steps x 4`` rows to a CPU memory budget; Captum: all rows in one batch).

Run: ``.venv/bin/python bench/ig_speed.py [--steps 16] [--reps 5]``
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch

import lumos


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def adaptive(ig: lumos.IntegratedGradients, x: torch.Tensor, target: list[int],
             evaluations: int) -> None:
    """Adaptive ``explain`` that spends exactly ``evaluations`` gradients per sample."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tolerance 0 is never reached
        exp = ig.explain(x, target=target, tolerance=0.0, max_steps=evaluations)
    assert exp.n_steps.tolist() == [evaluations] * x.shape[0], exp.n_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16, help="a multiple of 8")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    from captum.attr import IntegratedGradients as CaptumIG
    from torchvision.models import resnet18

    from lrp_speed import calibrated

    # BatchNorm statistics of random inputs: at torchvision's init (zero means, zero biases)
    # ResNet-18 is positively homogeneous, so along a path from the zero baseline its
    # gradient is constant and adaptive IG would have no map to refine
    model = calibrated(resnet18(weights=None), 224)
    x = torch.rand(4, 3, 224, 224)
    target = [1, 2, 3, 4]
    ours, theirs = lumos.IntegratedGradients(model), CaptumIG(model)
    plain = lumos.Gradient(model)
    runs: dict[str, Callable[[], object]] = {
        "plain gradient (batch 4)": lambda: plain.attribute(x, target=target),
        "lumos IG": lambda: ours.attribute(x, target=target, n_steps=args.steps),
        "captum IG": lambda: theirs.attribute(x, target=target, n_steps=args.steps),
        "lumos IG adaptive": lambda: adaptive(ours, x, target, args.steps + 1),
    }
    for fn in runs.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.reps):
        for name, fn in runs.items():
            times[name].append(timed(fn))
    med = {name: statistics.median(t) for name, t in times.items()}
    base = args.steps * med["plain gradient (batch 4)"]
    print(f"ResNet-18, batch 4, 224x224, CPU, 2 threads, n_steps={args.steps}, "
          f"{args.reps} interleaved repetitions (medians)")
    for name, t in med.items():
        print(f"  {name:26s}{t:9.3f} s")
    ratio_l, ratio_c = med["lumos IG"] / base, med["captum IG"] / base
    ratio_a = med["lumos IG adaptive"] / ((args.steps + 1) * med["plain gradient (batch 4)"])
    print(f"IG time / (evaluations x plain gradient): lumos {ratio_l:.3f}   captum {ratio_c:.3f}"
          f"   lumos adaptive {ratio_a:.3f}")
    ok = ratio_l <= 1.05 and ratio_a <= 1.05
    print(f"lumos ratios <= 1.05: {'PASS' if ok else 'FAIL'}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
