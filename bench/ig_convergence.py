"""Adaptive IG against fixed Gauss-Legendre: the attribution *map*'s accuracy per gradient paid.

For each model the true map error of every sample is ``|A - ref|_2 / |ref|_2`` against a
2,048-step Gauss-Legendre reference computed in float64 (its distance to the rule of half the
steps is printed as a check; it must be <= 0.2%). Rows:

- lumos ``explain(tolerance=0.01)`` (adaptive): gradient evaluations per sample, true map
  error, completeness gap ``|delta| / |f(x) - f(x')|``, and the honesty of its own estimate
  ``Explanation.error`` (share of samples with true <= estimate, largest true / estimate);
- fixed Gauss-Legendre with n = 16, 32, 64, 128, ... steps (lumos ``attribute``, equal to
  Captum's) until every sample's map is within 1%: that n is the fixed budget.

Models: ``mnist``: the study's CNN trained on mnist-5k (``lumos.models.zoo.mnist5k_cnn``), 64
held-out digits, true class, zero baseline; ``random``: a random ReLU6/Softplus CNN on 32
uniform 3x32x32 inputs; ``photos``: EfficientNet-Lite0 (ImageNet weights) on the four shipped
photos, top-1 class, zero baseline. PASS per
model when every sample's true map error and gap are <= 1% and lumos's mean evaluations are at
most half the fixed budget.

Run: ``.venv/bin/python bench/ig_convergence.py [--models mnist random] [--device cpu]
[--cache DIR] [--ref-steps N] [--ref-dtype float64|float32]`` (``--cache`` keeps the
references, which dominate the time).

The photos need ``--ref-steps 8192 --ref-dtype float32 --ref-method trapezoid``: across
EfficientNet's ReLU6 kinks the gradient jumps, so every rule converges only like ``1/n`` there,
and 2,048 Gauss-Legendre steps miss the 0.2% check (0.61% to 1,024 steps). The nested
trapezoid rule on 8,192 equal intervals checks itself against its own even nodes (4,096
intervals) at no extra gradient: 0.163%, 8,193 gradients per photo, 24 min on 2 CPU cores
(Gauss-Legendre needs 8,192 + 4,096 and took 50 min for 0.152%). float32 rounds each gradient
to about 1e-6 relative, far below the 0.1% this check resolves.
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

import lumos
from lumos.attribution import quadrature
from lumos.attribution.paths import Paths
from lumos.attribution.targets import Target

TOLERANCE = 0.01


def map_error(attr: Tensor, ref: Tensor) -> Tensor:
    """Relative L2 error per sample, float64 on the CPU."""
    a, r = attr.double().cpu().flatten(1), ref.double().cpu().flatten(1)
    return (a - r).norm(dim=1) / r.norm(dim=1)


def reference(model: nn.Module, x: Tensor, target: Tensor, cache: Path | None = None,
              steps: int = 2048, dtype: torch.dtype = torch.float64,
              method: str = "gauss_legendre") -> tuple[Tensor, float]:
    """``steps``-step map in ``dtype`` by ``method`` (Gauss-Legendre, or the trapezoid rule on
    ``steps`` intervals) and its largest distance to the same rule with half the steps.

    With ``cache`` (a file), a reference stored there for the same inputs and targets is
    loaded instead of recomputed, and a new one is stored.
    """
    key = (x.double().cpu(), target.cpu())
    if cache is not None and cache.exists():
        saved = torch.load(cache)
        if (torch.equal(saved["x"], key[0]) and torch.equal(saved["target"], key[1])
                and saved.get("steps", 2048) == steps
                and saved.get("dtype", "torch.float64") == str(dtype)
                and saved.get("method", "gauss_legendre") == method):
            return saved["ref"].to(x.device), float(saved["check"])
    # float64 convolutions on the CPU run fastest in small batches (EfficientNet-Lite0:
    # 0.15 s per gradient at 8 rows, 0.26 s at the memory budget's choice)
    rows: int | str = 8 if x.device.type == "cpu" and dtype == torch.float64 else "auto"
    if method == "trapezoid":
        ref, half = nested_trapezoid(copy.deepcopy(model).to(dtype), x.to(dtype), target,
                                     steps, rows)
    else:
        ig = lumos.IntegratedGradients(copy.deepcopy(model).to(dtype))
        ref = ig.attribute(x.to(dtype), target=target, n_steps=steps, internal_batch_size=rows)
        half = ig.attribute(x.to(dtype), target=target, n_steps=steps // 2,
                            internal_batch_size=rows)
    check = float(map_error(half, ref).max())
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        torch.save({"x": key[0], "target": key[1], "ref": ref.cpu(), "check": check,
                    "steps": steps, "dtype": str(dtype), "method": method}, tmp)
        tmp.replace(cache)
    return ref, check


def nested_trapezoid(model: nn.Module, x: Tensor, target: Tensor, steps: int,
                     rows: int | str) -> tuple[Tensor, Tensor]:
    """IG maps (zero baseline) by the trapezoid rule on ``steps`` equal intervals and on
    ``steps / 2`` from the same gradients: the check costs no extra gradient.

    Where the gradient jumps (ReLU6 kinks) the trapezoid rule converges like ``1 / n`` as
    Gauss-Legendre does, with nodes evenly spaced instead of sparser in the middle.
    """
    paths = Paths(model, x, [torch.zeros_like(x)], Target(target, x.shape[0]), rows)
    n = x.shape[0]
    nodes, fine = quadrature.rule("riemann_trapezoid", steps + 1)
    coarse = torch.zeros_like(fine)
    coarse[::2] = quadrature.rule("riemann_trapezoid", steps // 2 + 1)[1]
    ids = torch.arange(n).repeat(steps + 1)
    alphas, w_fine, w_coarse = (t.repeat_interleave(n) for t in (nodes, fine, coarse))
    totals = [torch.zeros_like(x, dtype=torch.float64) for _ in range(2)]
    for sl, _, grad in paths.evaluate(ids, alphas):
        g = grad.double()
        for total, w in zip(totals, (w_fine, w_coarse), strict=True):
            weighted = g * w[sl].to(g.device).view(-1, *[1] * (g.dim() - 1))
            total.index_add_(0, ids[sl].to(g.device), weighted)
    return totals[0] * x.double(), totals[1] * x.double()


def row(name: str, steps: str, err: Tensor, gap: Tensor, extra: str = "") -> None:
    print(f"  {name:34s}{steps:>12s}{err.median().item():9.3%}{err.max().item():9.3%}"
          f"{gap.max().item():9.3%}  {extra}")


def compare(label: str, model: nn.Module, x: Tensor, target: Tensor, limit: int,
            cache: Path | None = None, steps: int = 2048,
            dtype: torch.dtype = torch.float64, method: str = "gauss_legendre") -> bool:
    """Print the side-by-side table of one model; True when its PASS conditions hold."""
    t0 = time.perf_counter()
    ref, check = reference(model, x, target, cache, steps, dtype, method)
    rule = "GL" if method == "gauss_legendre" else "trapezoid"
    print(f"\n{label}: {x.shape[0]} inputs {tuple(x.shape[1:])}; reference {steps:,}-step {rule} "
          f"{str(dtype).removeprefix('torch.')} ({time.perf_counter() - t0:.0f} s), max "
          f"distance to {steps // 2:,} steps {check:.3%} (must be <= 0.2%)")
    print(f"  {'':34s}{'evals/input':>12s}{'err med':>9s}{'err max':>9s}{'gap max':>9s}")
    ig = lumos.IntegratedGradients(model)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = ig.explain(x, target=target, tolerance=TOLERANCE, max_steps=2048)
    seconds = time.perf_counter() - t0
    err = map_error(exp.attribution, ref)
    gap = (exp.delta.abs() / (exp.output - exp.baseline_output).abs()).double().cpu()
    est = exp.error.double().cpu()
    ratio = err / est
    mean = exp.n_steps.double().mean().item()
    row(f"lumos explain(tolerance={TOLERANCE})", f"{mean:.1f}", err, gap,
        f"max {int(exp.n_steps.max())} evals; {seconds:.1f} s; estimate: true <= est for "
        f"{(ratio <= 1).double().mean().item():.0%}, max true/est {ratio.max().item():.2f}")
    budget = None
    n = 16
    while n <= limit:
        attr, delta = ig.attribute(x, target=target, n_steps=n, return_convergence_delta=True)
        err_n = map_error(attr, ref)
        gap_n = (delta.abs() / (exp.output - exp.baseline_output).abs()).double().cpu()
        row(f"fixed Gauss-Legendre, n={n}", str(n), err_n, gap_n)
        if bool((err_n <= TOLERANCE).all()):
            budget = n
            break
        n *= 2
    ok = (check <= 0.002 and bool(exp.converged.all()) and bool((err <= TOLERANCE).all())
          and bool((gap <= TOLERANCE).all()) and budget is not None and mean <= 0.5 * budget)
    share = f"{mean / budget:.3f}" if budget else "n/a"
    print(f"  lumos mean / fixed budget {budget} = {share} (must be <= 0.5); every map and "
          f"gap <= 1%: {bool((err <= TOLERANCE).all() and (gap <= TOLERANCE).all())}: "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


def mnist(device: str) -> tuple[str, nn.Module, Tensor, Tensor]:
    from lumos.data.samples import mnist5k
    from lumos.models.zoo import mnist5k_cnn

    x, y = mnist5k("test")
    return ("mnist-5k CNN (seed 0), held-out digits, true class", mnist5k_cnn(0).to(device),
            x[:64].to(device), y[:64].to(device))  # the split interleaves the classes


def random_cnn(device: str) -> tuple[str, nn.Module, Tensor, Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU6(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.Softplus(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU6(), nn.Flatten(),
        nn.Linear(32 * 8 * 8, 64), nn.Softplus(), nn.Linear(64, 10)).eval().to(device)
    x = torch.rand(32, 3, 32, 32, device=device)
    with torch.no_grad():
        target = model(x).argmax(1)
    return "random ReLU6/Softplus CNN, uniform inputs, top-1 class", model, x, target


def photos(device: str) -> tuple[str, nn.Module, Tensor, Tensor]:
    from lumos.data.samples import PHOTOS
    from lumos.experiments.photos import load_photos, pretrained

    clf = pretrained("efficientnet-lite0")
    x = load_photos(list(PHOTOS), clf).to(device)
    model = clf.model.to(device)
    with torch.no_grad():
        target = model(x).argmax(1)
    return "EfficientNet-Lite0 (ImageNet), the four shipped photos, top-1", model, x, target


MODELS: dict[str, Callable[[str], tuple[str, nn.Module, Tensor, Tensor]]] = {
    "mnist": mnist, "random": random_cnn, "photos": photos}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=["mnist", "random"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=1024, help="largest fixed count tried")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder keeping each model's reference between runs")
    parser.add_argument("--ref-steps", type=int, default=2048,
                        help="steps of the reference rule (8192 for the photos)")
    parser.add_argument("--ref-dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--ref-method", choices=["gauss_legendre", "trapezoid"],
                        default="gauss_legendre",
                        help="reference rule; trapezoid checks against its own even nodes "
                             "(no extra gradients)")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.ref_dtype)
    results = [compare(*MODELS[name](args.device), args.limit,
                       args.cache / f"{name}.pt" if args.cache else None, args.ref_steps, dtype,
                       args.ref_method)
               for name in args.models]
    print(f"\noverall: {'PASS' if all(results) else 'FAIL'}")
    raise SystemExit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
