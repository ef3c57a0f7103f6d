"""Adaptive IG on the trained mnist-5k CNN: every digit's map within 1%, honestly estimated.

The comparison with fixed Gauss-Legendre (the budget it needs for every map within 1%) is in
``bench/ig_convergence.py``; here the true map error of 12 held-out digits is measured against
a 2,048-step float64 Gauss-Legendre reference.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import lumos
from helpers import untouched
from lumos.data.samples import mnist5k


@pytest.mark.slow
def test_adaptive_map_error_within_tolerance_and_estimate_honest(
        trained_mnist_cnn: nn.Module) -> None:
    model = trained_mnist_cnn
    x, y = mnist5k("test")
    x, y = x[:12], y[:12]  # the split interleaves the classes
    with untouched(model):
        exp = lumos.IntegratedGradients(model).explain(x, target=y, tolerance=0.01)
    reference = lumos.IntegratedGradients(copy.deepcopy(model).double()).attribute(
        x.double(), target=y, n_steps=2048)
    true = ((exp.attribution.double() - reference).flatten(1).norm(dim=1)
            / reference.flatten(1).norm(dim=1))
    gap = (exp.delta.abs() / (exp.output - exp.baseline_output).abs()).double()
    # converged: estimate <= tolerance, up to the rounding floor (tolerance * sqrt(eps))
    assert bool(exp.converged.all()) and bool((exp.error <= 0.01 * (1 + 1e-5)).all())
    assert bool((true <= 0.01).all()), true.max()
    assert bool((gap <= 0.01).all())
    ratio = true / exp.error.double()
    assert int((ratio > 1).sum()) <= 1 and float(ratio.max()) <= 2.0, ratio.sort().values[-4:]
    assert float(exp.n_steps.double().mean()) <= 64  # half of the 128 fixed steps (bench)
    assert torch.isfinite(exp.error).all()
