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

``--photos`` measures instead what a long adaptive path costs: EfficientNet-Lite0 (ImageNet
weights) on the four shipped photos at ``tolerance=0.01`` (about 230 evaluations per photo,
estimate and planning after every round), against a one-row plain gradient (``"auto"`` sends
one row per call there), with the 64-step fixed rule beside it.

Run: ``.venv/bin/python bench/ig_speed.py [--steps 16] [--reps 5] [--photos]``
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


def interleaved(runs: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median seconds of each run, after one warm-up, repetition by repetition in turn."""
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, fn in runs.items():
            times[name].append(timed(fn))
    return {name: statistics.median(t) for name, t in times.items()}


def photos(reps: int) -> bool:
    """Adaptive IG at ``tolerance=0.01`` on EfficientNet-Lite0 and the four shipped photos
    (long paths: about 230 evaluations each, one row per model call as ``"auto"`` chooses on
    the CPU) against a one-row plain gradient; the fixed rule (64 steps) beside it."""
    from lumos.data.samples import PHOTOS
    from lumos.experiments.photos import load_photos, pretrained

    clf = pretrained("efficientnet-lite0")
    x = load_photos(list(PHOTOS), clf)
    model = clf.model
    with torch.no_grad():
        target = model(x).argmax(1)
    ig, plain = lumos.IntegratedGradients(model), lumos.Gradient(model)
    spent: list[int] = []

    def adaptive_run() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spent.append(int(ig.explain(x, target=target, tolerance=0.01,
                                        max_steps=2048).n_steps.sum()))

    def plain_rows() -> None:  # 5 passes: the first rows after a long run are slower
        for _ in range(5):
            for i in range(x.shape[0]):
                plain.attribute(x[i:i + 1], target=target[i:i + 1])

    med = interleaved({"plain gradient (1 row) x 20": plain_rows,
                       "lumos IG, 64 steps": lambda: ig.attribute(x, target=target, n_steps=64),
                       "lumos IG adaptive": adaptive_run}, reps)
    row = med["plain gradient (1 row) x 20"] / (5 * x.shape[0])
    print(f"EfficientNet-Lite0, the 4 photos, 224x224, CPU, 2 threads, {reps} interleaved "
          f"repetitions (medians)")
    for name, t in med.items():
        print(f"  {name:30s}{t:9.3f} s")
    ratio_f = med["lumos IG, 64 steps"] / (64 * x.shape[0] * row)
    ratio_a = med["lumos IG adaptive"] / (spent[-1] * row)
    print(f"IG time / (evaluations x one-row gradient): lumos {ratio_f:.3f}   lumos adaptive "
          f"(tolerance 0.01, {spent[-1]} evaluations) {ratio_a:.3f}")
    return ratio_f <= 1.05 and ratio_a <= 1.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16, help="a multiple of 8")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--photos", action="store_true",
                        help="instead: EfficientNet-Lite0 on the photos, adaptive at 0.01")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    if args.photos:
        ok = photos(args.reps)
        print(f"lumos ratios <= 1.05: {'PASS' if ok else 'FAIL'}")
        raise SystemExit(0 if ok else 1)
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
    med = interleaved(runs, args.reps)
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
