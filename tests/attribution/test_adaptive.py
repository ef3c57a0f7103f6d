"""Adaptive IG: per-sample refinement until the estimated map error and the gap are small."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import lumos
from helpers import small_cnn, untouched
from lumos.attribution.adaptive import Cut, completeness_bound, plan
from lumos.attribution.integrated import ConvergenceWarning


class Counting(nn.Module):
    """Wraps a model and counts the rows it is called on."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return self.model(x)


def test_every_sample_reaches_the_tolerance_and_reports_it() -> None:
    model = Counting(small_cnn())
    x = torch.rand(4, 1, 12, 12, dtype=torch.float64)
    exp = lumos.IntegratedGradients(model).explain(x, target=[0, 1, 2, 3], tolerance=1e-2,
                                                   internal_batch_size=None)
    gap = exp.output - exp.baseline_output
    assert exp.method == "ig" and exp.converged is not None and bool(exp.converged.all())
    assert torch.allclose(exp.delta, exp.attribution.flatten(1).sum(1) - gap, atol=1e-13)
    assert bool((exp.delta.abs() <= 1e-2 * gap.abs() + 1e-9).all())
    assert exp.error is not None and bool((exp.error <= 1e-2).all())
    with torch.no_grad():
        assert torch.allclose(exp.output, model.model(x).gather(1, exp.target[:, None])[:, 0])
    # every gradient is paid once: the model saw exactly the reported evaluations (no
    # "auto" probe row here)
    assert model.rows == int(exp.n_steps.sum())
    assert exp.n_steps.dtype == torch.long and exp.n_steps.shape == (4,)


def test_tighter_tolerance_refines_and_converges_to_fine_fixed_rule() -> None:
    model = small_cnn()
    x = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    ig = lumos.IntegratedGradients(model)
    loose = ig.explain(x, target=3, tolerance=5e-2)
    tight = ig.explain(x, target=3, tolerance=5e-3)
    assert bool((tight.n_steps > loose.n_steps).all()) and bool(tight.converged.all())
    assert bool((tight.error <= 5e-3).all()) and bool((loose.error <= 5e-2).all())
    reference = ig.attribute(x, target=3, n_steps=4000, method="riemann_middle")
    assert bool((map_error(tight.attribution, reference) < map_error(loose.attribution,
                                                                     reference)).all())


def test_unconverged_samples_are_reported_with_a_warning() -> None:
    model = small_cnn()
    x = torch.rand(3, 1, 12, 12, dtype=torch.float64)
    with pytest.warns(ConvergenceWarning, match="did not reach the tolerance"):
        exp = lumos.IntegratedGradients(model).explain(x, target=1, tolerance=1e-12,
                                                       max_steps=12)
    assert not bool(exp.converged.all())
    assert bool((exp.n_steps <= 12).all()) and bool((exp.error > 1e-12).all())
    assert bool((exp.delta[~exp.converged].abs() > 0).all())


def test_plan_lands_the_expected_estimate_on_the_target_with_the_fewest_nodes() -> None:
    rng = np.random.default_rng(0)
    weight = rng.uniform(0.5, 2.0, 12) * np.r_[np.full(6, 1.0), np.full(6, 8.0)]
    target = 0.1 * np.sqrt(weight.sum())
    counts = plan(weight, target)
    expected = float(np.sum(weight * (2.0 / counts) ** 2))
    assert expected <= target**2 and bool((counts % 2 == 0).all()) and counts.min() >= 2
    # one interval pair fewer anywhere misses the target: no node is wasted
    for i in np.flatnonzero(counts > 2):
        fewer = counts.copy()
        fewer[i] -= 2
        assert float(np.sum(weight * (2.0 / fewer) ** 2)) > target**2 * 0.97
    # the panels with 8x the weight get about 2x the intervals (k ~ weight^(1/3))
    assert 1.6 < counts[6:].mean() / counts[:6].mean() < 2.4
    # within budget; and a weight already under the target still cuts one panel
    assert int(np.sum(plan(weight, 1e-9, room=10) - 2)) <= 12
    spent = plan(weight, 0.0, room=10)  # tolerance 0: the budget is spread over the panels
    assert spent.min() >= 2 and 10 <= int(np.sum(spent - 2)) <= 12
    small = plan(np.array([1.0, 3.0, 2.0]), 10.0)
    assert small.tolist() == [2, 4, 2]


def test_plan_cuts_the_panels_whose_gap_parts_carry_the_gap() -> None:
    share = np.array([0.5, -0.2, 0.3, 0.05, -0.1])  # gap 0.55
    counts = plan(np.zeros(5), 1.0, share, bound=0.05)
    assert counts.tolist() == [4, 2, 4, 2, 2]  # 0.5 < 0.55 - 0.025 <= 0.5 + 0.3


def test_cut_nodes_share_the_old_midpoint_and_make_equal_intervals() -> None:
    cut = Cut(path=3, left=0.25, width=0.5, count=6)
    nodes = np.sort(np.r_[cut.nodes(), 0.25, 0.5, 0.75])
    assert cut.nodes().size == 4 and np.allclose(np.diff(nodes), 0.5 / 6)


def test_score_constant_along_the_path_converges_immediately() -> None:
    """f(x) == f(x'): the score's change is rounding, the rounding floor decides (documented)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).double()
    x = torch.zeros(2, 4, dtype=torch.float64)
    exp = lumos.IntegratedGradients(model).explain(x, target=0)
    assert bool(exp.converged.all()) and int(exp.n_steps.max()) == 9  # the first 4 panels
    assert float(exp.attribution.abs().max()) == 0.0 and float(exp.error.max()) == 0.0


def test_completeness_bound_is_relative_unless_the_change_is_rounding() -> None:
    eps = float(torch.finfo(torch.float32).eps)
    # a small change far above the rounding level of the scores: purely relative
    assert completeness_bound(0.01, 0.6 + 1e-4, 0.6, torch.float32) == pytest.approx(1e-6)
    # a change of a few ulps: the rounding level stands in for it
    assert completeness_bound(0.01, 1 + 2 * eps, 1.0, torch.float32) == pytest.approx(
        0.01 * 64 * eps)
    assert completeness_bound(0.01, 3.0, 1.0, torch.float32, atol=0.5) == pytest.approx(0.52)


def test_small_score_change_still_gets_a_relative_gap() -> None:
    """f ~ 10 changes by 3.5e-3 along the path: the gap is within 1% of that change. The old
    absolute slack ``tolerance * sqrt(eps) * |f|`` (still there as an explicit ``atol``)
    stopped this sample at a gap of 1.25% of it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))
    with torch.no_grad():
        model[3].bias.fill_(10.0)
    x = torch.rand(1, 16)
    base = x + 0.05 * torch.randn_like(x)  # nearby: a small, non-zero change of the score
    ig = lumos.IntegratedGradients(model)
    exp = ig.explain(x, target=0, baselines=base, tolerance=0.01)
    change = float((exp.output - exp.baseline_output).abs())
    floor = 64 * float(torch.finfo(torch.float32).eps) * max(1.0, float(exp.output.abs()))
    assert bool(exp.converged.all()) and change > 10 * floor, (change, floor)
    assert float(exp.delta.abs()) <= 0.01 * change
    old_slack = 0.01 * float(torch.finfo(torch.float32).eps) ** 0.5 * float(exp.output.abs())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loose = ig.explain(x, target=0, baselines=base, tolerance=0.01, atol=old_slack)
    assert float(loose.delta.abs()) > 0.01 * change  # the case the default now catches


def test_several_baselines_converge_against_the_mean_baseline_output() -> None:
    model = small_cnn()
    x = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    exp = lumos.IntegratedGradients(model).explain(
        x, target=2, baselines=["zero", "blur", 0.5], tolerance=1e-2)
    with torch.no_grad():
        bases = [torch.zeros_like(x), lumos.attribution.baselines.Blur()(x),
                 torch.full_like(x, 0.5)]
        mean_base = torch.stack([model(b)[:, 2] for b in bases]).mean(0)
    assert torch.allclose(exp.baseline_output, mean_base, atol=1e-12)
    assert bool(exp.converged.all()) and bool((exp.error <= 1e-2).all())
    assert bool((exp.n_steps >= 27).all())  # at least 9 evaluations per baseline


def test_fixed_explain_reports_the_same_numbers_as_attribute() -> None:
    model = small_cnn()
    x = torch.rand(2, 1, 12, 12, dtype=torch.float32)
    model = model.float()
    ig = lumos.IntegratedGradients(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 20 trapezoid steps: not within 5%
        exp = ig.explain(x, target=4, n_steps=20, method="riemann_trapezoid", tolerance=0.05)
    attr, delta = ig.attribute(x, target=4, n_steps=20, method="riemann_trapezoid",
                               return_convergence_delta=True)
    assert exp.attribution.dtype == torch.float32
    assert torch.equal(exp.attribution, attr) and torch.allclose(exp.delta, delta)
    assert exp.n_steps.tolist() == [20, 20] and exp.error is None


def test_adaptive_float32_and_chunked() -> None:
    model = small_cnn().float()
    x = torch.rand(3, 1, 12, 12)
    ig = lumos.IntegratedGradients(model)
    a = ig.explain(x, target=0, tolerance=0.05, internal_batch_size=5)
    b = ig.explain(x, target=0, tolerance=0.05)
    assert torch.equal(a.n_steps, b.n_steps)
    assert torch.allclose(a.attribution, b.attribution, atol=1e-6)
    assert bool(b.converged.all())


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), dtype=st.sampled_from([torch.float32, torch.float64]),
       tolerance=st.sampled_from([1e-2, 1e-3]))
def test_adaptive_meets_its_bound_on_random_relu_models(seed, dtype, tolerance) -> None:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 4)).to(dtype)
    x = torch.randn(5, 7, dtype=dtype)
    exp = lumos.IntegratedGradients(model).explain(x, target=seed % 4, tolerance=tolerance,
                                                   baselines="uniform", max_steps=4096)
    gap = (exp.output - exp.baseline_output).abs().double()
    slack = tolerance * torch.finfo(dtype).eps ** 0.5 * torch.maximum(
        exp.output.abs(), exp.baseline_output.abs()).double().clamp(min=1.0)
    assert bool(exp.converged.all()) and exp.attribution.dtype == dtype
    assert bool((exp.delta.abs().double() <= tolerance * gap + slack + 1e-6 * gap).all())


def map_error(attr: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Relative L2 error of each sample's map against the reference."""
    diff = (attr.double() - reference.double()).flatten(1).norm(dim=1)
    return diff / reference.double().flatten(1).norm(dim=1)


def random_mlp(seed: int, activation: type[nn.Module]) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(7, 16), activation(), nn.Linear(16, 16), activation(),
                         nn.Linear(16, 4)).eval()


def fine_reference(model: nn.Module, x: torch.Tensor, target: int,
                   baselines: object = None) -> torch.Tensor:
    """20,000-step midpoint rule in float64: accurate to ~1e-5 on these small MLPs (a
    2,048-step Gauss-Legendre rule is off by up to 3e-3 on their few, large ReLU jumps)."""
    ig = lumos.IntegratedGradients(model.double())
    return ig.attribute(x.double(), target=target, baselines=baselines, n_steps=20_000,
                        method="riemann_middle", internal_batch_size=None)


@pytest.mark.slow
def test_error_estimate_is_honest_on_random_mlps() -> None:
    """Over 12 random models x 16 inputs x 2 tolerances: true <= estimate for >= 95% of the
    samples and never above twice it; and every sample's map within its tolerance."""
    ratios, within = [], []
    for seed in range(12):
        activation = (nn.ReLU, nn.Softplus, nn.ReLU6)[seed % 3]
        model = random_mlp(seed, activation)
        x = 2 * torch.randn(16, 7, dtype=torch.float64)
        reference = fine_reference(model, x, seed % 4)
        for tolerance in (1e-2, 2e-3):
            with untouched(model):
                exp = lumos.IntegratedGradients(model).explain(x, target=seed % 4,
                                                               tolerance=tolerance,
                                                               max_steps=4096)
            assert bool(exp.converged.all())
            true = map_error(exp.attribution, reference)
            ratios.append(true / exp.error.double())
            within.append(true <= 2 * tolerance)
    ratio = torch.cat(ratios)
    assert float((ratio <= 1).double().mean()) >= 0.95, ratio.sort().values[-20:]
    assert float(ratio.max()) <= 2.0 and bool(torch.cat(within).all())


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), dtype=st.sampled_from([torch.float32, torch.float64]),
       baselines=st.sampled_from([None, "uniform", ["zero", 0.5]]))
def test_error_estimate_is_never_far_below_the_truth(seed, dtype, baselines) -> None:
    """Random ReLU/Softplus MLPs, one or several baselines, both dtypes: the map is within
    twice its estimate and the estimate within the tolerance."""
    model = random_mlp(seed, (nn.ReLU, nn.Softplus)[seed % 2]).to(dtype)
    x = torch.randn(6, 7, dtype=dtype)
    torch.manual_seed(seed)  # the uniform baseline draws from the global generator
    exp = lumos.IntegratedGradients(model).explain(x, target=seed % 4, tolerance=1e-2,
                                                   baselines=baselines, max_steps=4096)
    torch.manual_seed(seed)
    reference = fine_reference(model, x, seed % 4, baselines)
    floor = 1e-2 * (1 + torch.finfo(dtype).eps ** 0.5)  # the map criterion's rounding slack
    assert bool(exp.converged.all()) and bool((exp.error <= floor).all()), exp.error
    assert exp.error.dtype == dtype
    true = map_error(exp.attribution, reference)
    assert bool((true <= 2 * exp.error.double() + 1e-6).all()), (true, exp.error)


def test_without_multiplying_by_inputs_the_estimate_is_of_the_averaged_gradient() -> None:
    model = random_mlp(3, nn.ReLU).double()
    x = torch.randn(4, 7, dtype=torch.float64)
    ig = lumos.IntegratedGradients(model, multiply_by_inputs=False)
    exp = ig.explain(x, target=1, tolerance=1e-2, max_steps=4096)
    reference = ig.attribute(x, target=1, n_steps=20_000, method="riemann_middle",
                             internal_batch_size=None)
    assert bool(exp.converged.all()) and bool((exp.error <= 1e-2).all())
    assert bool((map_error(exp.attribution, reference) <= 2 * exp.error).all())
