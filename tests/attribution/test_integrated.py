"""Integrated Gradients against Captum (the oracle) and the completeness axiom."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import lumos
from helpers import small_cnn, small_mlp
from lumos.attribution import quadrature
from lumos.attribution.quadrature import METHODS

CAPTUM_NAME = {m: ("gausslegendre" if m == "gauss_legendre" else m) for m in METHODS}


def captum_ig(model, x, baseline, target, n, method):
    from captum.attr import IntegratedGradients as CaptumIG

    return CaptumIG(model).attribute(x, baselines=baseline, target=target, n_steps=n,
                                     method=CAPTUM_NAME[method], return_convergence_delta=True)


def captum_rule(method: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Captum's nodes and weights exactly as Captum applies them (weights rounded to float32)."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters(CAPTUM_NAME[method])
    return (torch.tensor(alphas(n), dtype=torch.float64),
            torch.tensor(step_sizes(n)).float().double())


def models_and_inputs():
    return [(small_cnn(), torch.rand(3, 1, 12, 12, dtype=torch.float64)),
            (small_mlp(), torch.randn(3, 20, dtype=torch.float64))]


@pytest.mark.parametrize("method", METHODS)
def test_equals_captum_to_1e10_with_captums_own_rule(method, monkeypatch) -> None:
    """Same nodes and weights in -> same attribution out, for every method and baseline kind."""
    monkeypatch.setattr(quadrature, "rule", captum_rule)
    for model, x in models_and_inputs():
        baselines = [0.0, 0.25, torch.rand_like(x), torch.rand_like(x[:1])]
        for baseline in baselines:
            ours, delta = lumos.IntegratedGradients(model).attribute(
                x, baselines=baseline, target=[0, 1, 2], n_steps=7, method=method,
                return_convergence_delta=True)
            theirs, c_delta = captum_ig(model, x, baseline, [0, 1, 2], 7, method)
            assert ours.dtype == torch.float64
            assert torch.allclose(ours, theirs, rtol=0, atol=1e-10)
            assert torch.allclose(delta, c_delta, rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_public_rule_matches_captum_up_to_its_float32_weights(method) -> None:
    model, x = models_and_inputs()[0]
    n = 10
    ours = lumos.IntegratedGradients(model).attribute(x, target=3, n_steps=n, method=method)
    theirs, _ = captum_ig(model, x, None, 3, n, method)
    if method == "riemann_trapezoid":  # Captum's trapezoid weights sum to (n - 1) / n
        theirs = theirs * n / (n - 1)
    scale = theirs.abs().max()
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-6 * float(scale))


def test_several_baselines_average_captum() -> None:
    model, x = models_and_inputs()[0]
    bases = [torch.zeros_like(x), torch.rand_like(x), torch.full_like(x, 0.5)]
    ours, delta = lumos.IntegratedGradients(model).attribute(
        x, baselines=bases, target=1, n_steps=8, return_convergence_delta=True)
    runs = [captum_ig(model, x, b, 1, 8, "gauss_legendre") for b in bases]
    assert torch.allclose(ours, torch.stack([r[0] for r in runs]).mean(0), atol=1e-6)
    # delta: completeness against the mean baseline output
    with torch.no_grad():
        f_x = model(x)[:, 1]
        f_b = torch.stack([model(b)[:, 1] for b in bases]).mean(0)
    assert torch.allclose(delta, ours.flatten(1).sum(1) - (f_x - f_b), atol=1e-12)


@pytest.mark.parametrize("chunk", [1, 5, 7, "auto"])
def test_internal_batch_size_gives_the_same_result(chunk) -> None:
    model, x = models_and_inputs()[0]
    ig = lumos.IntegratedGradients(model)
    full = ig.attribute(x, target=2, n_steps=6)
    assert torch.allclose(ig.attribute(x, target=2, n_steps=6, internal_batch_size=chunk),
                          full, rtol=0, atol=1e-13)


def test_any_rank_and_callable_targets_on_multi_output_models() -> None:
    seq = nn.Sequential(nn.Conv1d(2, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(24, 3)).double()
    x = torch.randn(2, 2, 8, dtype=torch.float64)
    attr, delta = lumos.IntegratedGradients(seq).attribute(
        x, target=lambda out: out[:, 0] - out[:, 2], n_steps=64, return_convergence_delta=True)
    assert attr.shape == x.shape and float(delta.abs().max()) < 1e-8
    scalar = nn.Sequential(nn.Linear(5, 1), nn.Tanh()).double()
    tab = torch.randn(4, 5, dtype=torch.float64)
    _, delta = lumos.IntegratedGradients(scalar).attribute(tab, n_steps=32,
                                                           return_convergence_delta=True)
    assert float(delta.abs().max()) < 1e-10


def test_without_multiplying_by_inputs_returns_the_path_gradient() -> None:
    model, x = models_and_inputs()[1]
    ig = lumos.IntegratedGradients(model, multiply_by_inputs=False)
    avg = ig.attribute(x, target=0, n_steps=16)
    full = lumos.IntegratedGradients(model).attribute(x, target=0, n_steps=16)
    assert torch.allclose(avg * x, full, atol=1e-14)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_completeness_on_random_smooth_models(seed: int, dtype: torch.dtype) -> None:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)
    x = torch.randn(4, 6, dtype=dtype)
    attr, delta = lumos.IntegratedGradients(model).attribute(
        x, target=seed % 3, n_steps=24, return_convergence_delta=True)
    assert attr.dtype == dtype and delta.dtype == dtype
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert float(delta.abs().max()) < tol


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    model, x = models_and_inputs()[0]
    cpu_ig = lumos.IntegratedGradients(model)
    cpu = cpu_ig.explain(x, target=1, baselines=["zero", "blur", "uniform"])
    ig = lumos.IntegratedGradients(copy.deepcopy(model).cuda())
    gpu = ig.explain(x.cuda(), target=1, baselines=["zero", "blur", "uniform"])
    assert gpu.attribution.device.type == "cuda" and gpu.delta.device.type == "cuda"
    assert torch.equal(gpu.n_steps, cpu.n_steps)
    assert torch.allclose(gpu.attribution.cpu(), cpu.attribution, atol=1e-10)
    auto = ig.attribute(x.cuda(), target=1, internal_batch_size="auto")
    assert torch.allclose(auto.cpu(), cpu_ig.attribute(x, target=1), atol=1e-10)
