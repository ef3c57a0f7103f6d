"""Never silently wrong: the capture's reproduction check scales with the magnitudes the model
went through, and relevance worn away by the rules' stabilisers raises one clear error.

- A graph that loses a branch adding 1e-7 of the output is caught in float64 (the bound of a
  model whose activations stay near its output's scale is ~1e-12 of it), while a model whose
  activations grow large before cancelling, or whose output amplifies any perturbation, passes
  (:func:`verify.tolerance`, :class:`verify.Conditioning`). The rules' forward pass is held to
  the same bound: a step off by 1e-9 is caught.
- timm's ``mobilenetv4_hybrid_medium`` at its default init scales every stage's first block by a
  layer scale of 1e-5 without a shortcut: the logits are ~1e-16 and each epsilon or z+
  stabiliser (1e-6) keeps ~1e-10 of the relevance it receives, so the float32 heatmap underflows
  to zero. ``LRP`` raises naming the layer that absorbed it, for a small model built the same way
  and for the timm model itself.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import lumos
from helpers import untouched
from lumos.lrp import composites
from lumos.lrp.capture import verify
from lumos.lrp.capture.prepare import prepare
from lumos.lrp.errors import LRPUnsupportedError


class LosesABranch(nn.Module):
    """Adds ``share`` of its output's scale on its first call only (as a Python-side branch the
    capture does not see): the captured graph lacks that branch."""

    def __init__(self, share: float = 1e-7) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(5))
        self.calls, self.share = 0, share

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.body(x)
        if self.calls == 0:   # the reference run; the capture is the second call
            out = out + self.share * out.detach().abs().max()
        self.calls += 1
        return out


def test_a_lost_branch_of_1e_7_of_the_output_is_caught_in_float64() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    model = LosesABranch().double()
    model(x)   # materialise the lazy layer
    model.calls = 0
    with pytest.raises(LRPUnsupportedError, match=r"largest difference of 1e-07 of the output"):
        prepare(model, x)
    model.calls = 1   # no branch on either call: reproduces
    prepare(model, x)


def test_the_float64_bound_scales_with_the_largest_intermediate_value() -> None:
    out = torch.ones(3, dtype=torch.float64)
    eps = torch.finfo(torch.float64).eps
    assert verify.tolerance(out) == pytest.approx(verify.ROUNDING_UNITS * eps)
    assert verify.tolerance(out, 1e6) == pytest.approx(verify.ROUNDING_UNITS * eps * 1e6)
    assert verify.tolerance(out, 1e20) == verify.FLOAT64_CAP
    assert verify.tolerance(out, 1e-3) == verify.tolerance(out)   # growth below 1: as 1
    # float32: the same rule between a floor and a cap below a lost branch of 1e-2
    assert verify.tolerance(out.float()) == verify.FLOAT32_FLOOR == 1e-3
    rounding = verify.ROUNDING_UNITS * torch.finfo(torch.float32).eps
    assert verify.tolerance(out.float(), 20.0) == pytest.approx(rounding * 20.0)
    assert verify.tolerance(out.float(), 1e6) == verify.FLOAT32_CAP < 1e-2
    assert verify.tolerance(out.half(), 1e6) == 5e-2   # half precision keeps its fixed bound


class Cancelling(nn.Module):
    """Activations of ~1e7 that a BatchNorm without its mean brings back to order 1: float64
    rounding of ~1e7 eps, which folding the BatchNorm moves."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3)
        self.bn = nn.BatchNorm2d(16)
        self.head = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(16 * 36, 4))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.bn(self.conv(x)))
        return out


def test_a_model_that_cancels_large_activations_still_reproduces() -> None:
    torch.manual_seed(0)
    model = Cancelling().double().eval()
    with torch.no_grad():
        model.conv.bias.fill_(1e7)
        model.bn.running_mean.fill_(1e7)
        model.bn.running_var.fill_(3.0)
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    gm = prepare(model, x)
    assert gm.lumos_growth > 1e6   # the bound followed the activations, not the output
    with torch.no_grad():
        rel = float((gm(x) - model(x)).abs().max() / model(x).abs().max())
    assert rel <= verify.tolerance(model(x), gm.lumos_growth)



def test_a_float32_model_that_amplifies_its_own_rounding_is_explained() -> None:
    """Activations of 1e5 that a BatchNorm brings back to order 1, in float32: the model's own
    output is 2.7e-3 off its float64 value (the folded graph's is not), above the floor of
    1e-3; its growth (~3e5) allows up to the cap, 5e-3, and the LRP run (the rules' forward
    check, a second batch size) holds to the same bound."""
    torch.manual_seed(1)
    model = Cancelling().eval()
    with torch.no_grad():
        model.conv.bias.fill_(1e5)
        model.bn.running_mean.fill_(1e5)
        model.bn.running_var.fill_(3.0)
    x = torch.randn(1, 3, 8, 8)
    gm = prepare(model, x)
    with torch.no_grad():
        rel = float((gm(x) - model(x)).abs().max() / model(x).abs().max())
    assert verify.FLOAT32_FLOOR < rel <= verify.tolerance(model(x), gm.lumos_growth)
    with untouched(model):
        relevance = lumos.LRP(model, composites.EpsilonPlus()).attribute(x, target=0)
    assert bool(torch.isfinite(relevance).all()) and bool(relevance.abs().sum() > 0)

def test_sensitivity_measures_how_much_the_output_amplifies_a_relative_change() -> None:
    x = torch.tensor([[1.0 + 1e-6, 1.0]], dtype=torch.float64)
    # x0 - x1 = 1e-6 moves by up to 2 delta when each input moves by delta relative
    amplification = verify.sensitivity(lambda v: v[:, :1] - v[:, 1:], x)
    assert 1e6 <= amplification <= 2.1e6
    assert verify.sensitivity(lambda v: 3.0 * v, x) == pytest.approx(1.0, rel=1e-3)
    assert verify.sensitivity(lambda v: v[:, :1] - v[:, 1:], x.float()) == 1.0



def test_a_step_whose_forward_differs_by_1e_9_is_caught_in_float64() -> None:
    """The rules' forward check has the capture's bound (~1e-12 here): each step computes its
    module's value, only its backward carries the rule."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5))
    model = model.double().eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    lrp = lumos.LRP(model, composites.EpsilonPlus())
    lrp.attribute(x, target=0)   # the true steps pass
    program = lrp.program(x)
    program.rules_checked = False
    last = next(n for n in program.steps if program.name(n) == "3")
    step = program.steps[last]
    program.steps[last] = lambda run, node, args, kwargs: step(run, node, args, kwargs) * (
        1 + 1e-9)
    with untouched(model), pytest.raises(LRPUnsupportedError,
                                         match=r"forward pass of the LRP rules differs"):
        lrp.attribute(x, target=0)


def test_a_lost_branch_of_1e_2_is_caught_in_float32_whatever_the_growth() -> None:
    """float32's loosest bound is below 1e-2: the lost branch is refused even where the model
    amplifies rounding without bound (no probe runs: no growth could allow it)."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8)
    model = LosesABranch(1e-2)
    model(x)
    model.calls = 0
    with pytest.raises(LRPUnsupportedError, match=r"largest difference of 0.0099 of the output"):
        prepare(model, x)
    gm = capture_only(model, x)
    measured: list[float] = []
    for conditioning, allowed in ((verify.Conditioning(), r"1\.0e-03"),
                                  (verify.Conditioning(largest=1e9), r"5\.0e-03")):
        with pytest.raises(LRPUnsupportedError, match=allowed):
            verify.check_reproduces(gm, x, _branched(model, x, 1e-2), {}, conditioning,
                                    measure=lambda: measured.append(1e9) or 1e9)
    assert measured == []


def capture_only(model: LosesABranch, x: Tensor) -> torch.fx.GraphModule:
    """The prepared graph of ``model`` without its branch."""
    model.calls = 1
    return prepare(model, x)


def _branched(model: LosesABranch, x: Tensor, share: float) -> Tensor:
    """``model``'s output with a branch adding ``share`` of its scale."""
    with torch.no_grad():
        out: Tensor = model.body(x)
    return out + share * out.abs().max()


def test_float32_bound_follows_the_growth_measured_when_needed() -> None:
    """A float32 graph 2e-3 off its model (above the floor, below the cap) passes once the
    model's measured sensitivity says its arithmetic amplifies rounding that much; the probe
    runs only then."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8)
    model = LosesABranch()
    model(x)
    gm = capture_only(model, x)
    calls: list[int] = []

    def measure(value: float) -> Callable[[], float]:
        return lambda: calls.append(1) or value

    verify.check_reproduces(gm, x, _branched(model, x, 0.0), {}, measure=measure(1.0))
    assert calls == []   # within the floor: no probe
    expected = _branched(model, x, 2e-3)
    growth = verify.check_reproduces(gm, x, expected, {}, measure=measure(100.0))
    assert calls == [1] and growth == 100.0
    with pytest.raises(LRPUnsupportedError, match=r"allowed 1\.0e-03"):
        verify.check_reproduces(gm, x, expected, {}, measure=measure(1.0))


class Shrinking(nn.Module):
    """Three stages each scaled by a layer scale of 1e-5 without a shortcut (as timm's
    MobileNetV4 at its init): logits of ~1e-15."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList(nn.Conv2d(c, 8, 3, padding=1, bias=False)
                                    for c in (3, 8, 8))
        self.scales = nn.ParameterList(nn.Parameter(torch.full((8, 1, 1), 1e-5))
                                       for _ in range(3))
        self.head = nn.Linear(8, 10)

    def forward(self, x: Tensor) -> Tensor:
        for conv, scale in zip(self.stages, self.scales, strict=True):
            x = torch.relu(conv(x)) * scale
        out: Tensor = self.head(x.mean((2, 3)))
        return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("composite", [composites.EpsilonPlus, composites.CPLRP])
def test_relevance_worn_away_by_stabilisers_raises_naming_the_layer(
        dtype: torch.dtype, composite: type[composites.Composite]) -> None:
    torch.manual_seed(0)
    model = Shrinking().to(dtype).eval()
    with torch.no_grad():
        model.head.bias.zero_()
    x = torch.rand(2, 3, 8, 8, dtype=dtype)
    with torch.no_grad():
        assert float(model(x).abs().max()) < 1e-12
    with untouched(model), pytest.raises(
            LRPUnsupportedError, match=r"although the explained score is not .*'head' passes on "
                                       r"only .* of the relevance it receives"):
        lumos.LRP(model, composite()).attribute(x, target=0)
    # the same model with activations of order 1 is explained
    with torch.no_grad():
        for scale in model.scales:
            scale.fill_(1.0)
    relevance = lumos.LRP(model, composite()).attribute(x, target=0)
    assert bool(torch.isfinite(relevance).all()) and bool(relevance.abs().sum() > 0)


def test_one_worn_away_sample_in_a_batch_is_named_from_its_own_rerun() -> None:
    """Only the broken sample is rerun for the report; its row is found again in the batch."""
    torch.manual_seed(0)
    model = Shrinking().double().eval()
    with torch.no_grad():
        model.head.bias.zero_()
        for scale in model.scales:
            scale.fill_(1.0)
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    x[2] *= 1e-30   # activations and logits of ~1e-30: the stabilisers take all of it
    with untouched(model), pytest.raises(LRPUnsupportedError, match=r"'head' passes on only"):
        lumos.LRP(model, composites.EpsilonPlus()).attribute(x, target=0)


@pytest.mark.slow
def test_timm_mobilenetv4_hybrid_medium_at_its_init_raises() -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("mobilenetv4_hybrid_medium", pretrained=False).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert float(model(x).abs().max()) < 1e-14   # the layer scales of 1e-5
    with untouched(model), pytest.raises(
            LRPUnsupportedError, match=r"zero everywhere although the explained score is not "
                                       r".*'classifier' passes on only"):
        lumos.LRP(model, composites.EpsilonPlus()).attribute(x, target=0)
