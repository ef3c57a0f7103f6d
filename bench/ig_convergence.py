"""Adaptive IG vs Captum's fixed Gauss-Legendre: gradient evaluations to reach 1% completeness.

The study's small CNN trained on the embedded MNIST train split
(``lumos.models.zoo.mnist5k_cnn``, seeded, cached under ``$LUMOS_CACHE``); 64 held-out test
digits are explained for their true class against the black (zero) baseline. Captum needs one
step count for the whole batch: the bench searches the smallest ``n`` for which *every* digit
has ``|delta| <= 1% |f(x) - f(x')|`` (a linear scan, so the first count that works, the most
favourable to Captum). lumos's adaptive ``explain`` refines each digit separately. PASS when
lumos brings every digit within 1% and spends on average at most half of Captum's count per
digit.

Run: ``.venv/bin/python bench/ig_convergence.py [--seed 0]``
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor, nn

import lumos
from lumos.data.samples import mnist5k
from lumos.models.zoo import mnist5k_cnn

TOLERANCE = 0.01
N_DIGITS = 64


def captum_within(model: nn.Module, x: Tensor, y: Tensor, n: int) -> Tensor:
    """Per digit: does Captum's Gauss-Legendre with ``n`` steps reach the tolerance?"""
    from captum.attr import IntegratedGradients as CaptumIG

    _, delta = CaptumIG(model).attribute(x, target=y, n_steps=n, method="gausslegendre",
                                         return_convergence_delta=True)
    with torch.no_grad():
        gap = model(x).gather(1, y[:, None])[:, 0] - model(torch.zeros_like(x)).gather(
            1, y[:, None])[:, 0]
    return delta.abs() <= TOLERANCE * gap.abs()


def captum_minimal_steps(model: nn.Module, x: Tensor, y: Tensor, limit: int) -> int:
    """The first step count for which every digit is within the tolerance (linear scan)."""
    for n in range(1, limit + 1):
        if bool(captum_within(model, x, y, n).all()):
            return n
    raise RuntimeError(f"Captum did not bring every digit within {TOLERANCE:.0%} by {limit} steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="training seed of the CNN")
    parser.add_argument("--limit", type=int, default=1000, help="largest Captum step count tried")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = mnist5k_cnn(args.seed)
    x_test, y_test = mnist5k("test")
    with torch.no_grad():
        acc = (model(x_test).argmax(1) == y_test).double().mean().item()
    x, y = x_test[:N_DIGITS], y_test[:N_DIGITS]  # the split interleaves the classes
    print(f"mnist5k_cnn(seed={args.seed}): test accuracy {acc:.3f}; explaining {N_DIGITS} "
          f"held-out digits (digits per class {y.bincount().tolist()})"
          f"\n   (true class, zero baseline, tolerance {TOLERANCE:.0%})")

    t0 = time.perf_counter()
    exp = lumos.IntegratedGradients(model).explain(x, target=y, tolerance=TOLERANCE,
                                                   max_steps=2048)
    t_lumos = time.perf_counter() - t0
    rel = (exp.delta.abs() / (exp.output - exp.baseline_output).abs())
    lumos_mean = exp.n_steps.double().mean().item()

    t0 = time.perf_counter()
    captum_n = captum_minimal_steps(model, x, y, args.limit)
    t_captum = time.perf_counter() - t0

    print(f"{'':28s}{'lumos adaptive':>16s}{'captum GL fixed':>18s}")
    print(f"{'grad evals per digit (mean)':28s}{lumos_mean:16.1f}{captum_n:18d}")
    print(f"{'grad evals per digit (max)':28s}{int(exp.n_steps.max()):16d}{captum_n:18d}")
    print(f"{'digits within 1%':28s}{int(exp.converged.sum()):13d}/{N_DIGITS}{N_DIGITS:15d}/"
          f"{N_DIGITS}")
    print(f"{'worst |delta| / |f(x)-f(xb)|':28s}{rel.max().item():16.4f}{'<= 0.01':>18s}")
    print(f"{'wall time (s)':28s}{t_lumos:16.2f}{t_captum:18.2f}  (captum: the whole search)")
    ratio = lumos_mean / captum_n
    ok = bool(exp.converged.all()) and ratio <= 0.5
    print(f"lumos mean / captum count = {ratio:.3f} (must be <= 0.5): {'PASS' if ok else 'FAIL'}")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
