"""The LRP attributor: identities, conservation report, start relevance, errors, model safety."""

from __future__ import annotations

import gc
import warnings

import pytest
import torch
from torch import nn

import lumos
from helpers import small_cnn, small_mlp, untouched
from lumos.lrp import composites, rules


def live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if type(o) in (torch.Tensor, nn.Parameter))


def relu_mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4)).double().eval()


@pytest.mark.parametrize("make", [small_cnn, relu_mlp])
def test_lrp0_equals_gradient_times_input(make: object) -> None:
    model = make()  # type: ignore[operator]
    shape = (3, 1, 12, 12) if make is small_cnn else (3, 6)
    x = torch.randn(*shape, dtype=torch.float64)
    with untouched(model):
        got = lumos.LRP(model, composites.Epsilon(0.0)).attribute(x, target=[0, 1, 2])
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(leaf).gather(1, torch.tensor([[0], [1], [2]])).sum(), leaf)
    torch.testing.assert_close(got, x * grad, rtol=1e-8, atol=1e-12)


def test_conservation_without_bias() -> None:
    model = small_cnn()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.zeros_(m.bias)
    x = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    exp = lumos.LRP(model, composites.EpsilonPlus(epsilon=1e-30, stabilizer=1e-30)).explain(x, 3)
    torch.testing.assert_close(exp.delta, torch.zeros(2, dtype=torch.float64), atol=1e-10, rtol=0)
    for name, total in exp.layers.items():
        torch.testing.assert_close(total, exp.output, atol=1e-10, rtol=0, msg=name)


def test_explain_reports_layers_from_output_to_input() -> None:
    model = small_cnn()
    x = torch.randn(2, 1, 12, 12, dtype=torch.float64)
    lrp = lumos.LRP(model, composites.EpsilonGammaBox(-3.0, 3.0))
    exp = lrp.explain(x, target=[1, 2])
    assert list(exp.layers) == ["output", "8", "7", "6", "5", "4", "3", "2", "1", "0", "input"]
    torch.testing.assert_close(exp.layers["output"], exp.output)
    torch.testing.assert_close(exp.delta, exp.attribution.sum((1, 2, 3)) - exp.output)
    torch.testing.assert_close(exp.layers["0"], exp.layers["input"])
    torch.testing.assert_close(exp.attribution, lrp.attribute(x, target=[1, 2]))
    assert exp.method == "lrp" and exp.target is not None and exp.target.tolist() == [1, 2]
    assert lrp.rules["0"] is not None and lrp.rules["0"].name == "ZBox"


def test_start_relevance_tensor_and_callable() -> None:
    model = small_mlp()
    x = torch.randn(2, 20, dtype=torch.float64)
    lrp = lumos.LRP(model, composites.EpsilonPlus())
    out = model(x).detach()
    start = torch.zeros_like(out)
    start[:, 2] = out[:, 2]
    by_target = lrp.attribute(x, target=2)
    torch.testing.assert_close(lrp.attribute(x, relevance=start), by_target)
    torch.testing.assert_close(lrp.attribute(x, relevance=lambda o: o * (torch.arange(5) == 2)),
                               by_target)
    ones = lrp.attribute(x, relevance=torch.ones_like(out))  # not divided by the output
    assert torch.isfinite(ones).all() and ones.abs().sum() > 0


def test_model_untouched_and_no_leaks_across_interleaved_models() -> None:
    a, b = small_cnn(), small_mlp()
    la, lb = lumos.LRP(a, composites.EpsilonGammaBox(0.0, 1.0)), lumos.LRP(b)
    xa, xb = torch.rand(2, 1, 12, 12, dtype=torch.float64), torch.randn(2, 20, dtype=torch.float64)
    with untouched(a), untouched(b):
        for _ in range(3):
            la.explain(xa, 0)
            lb.attribute(xb, 1)
    before = live_tensors()
    for _ in range(5):
        la.explain(xa, 0)
        lb.attribute(xb, 1)
    after = live_tensors()
    assert after <= before


def test_model_untouched_when_the_call_raises() -> None:
    model = small_cnn()
    lrp = lumos.LRP(model)
    with untouched(model), pytest.raises(IndexError, match="out of range"):
        lrp.attribute(torch.rand(1, 1, 12, 12, dtype=torch.float64), target=10)
    with untouched(model), pytest.raises(ValueError, match="NaN"):
        lrp.attribute(torch.full((1, 1, 12, 12), float("nan"), dtype=torch.float64), 0)


def test_prepared_copy_follows_changes_of_the_model() -> None:
    model = small_mlp()
    x = torch.randn(2, 20, dtype=torch.float64)
    lrp = lumos.LRP(model, composites.Epsilon())
    first = lrp.attribute(x, 0)
    with torch.no_grad():
        model[0].weight.mul_(2.0)
    second = lrp.attribute(x, 0)
    fresh = lumos.LRP(model, composites.Epsilon()).attribute(x, 0)
    torch.testing.assert_close(second, fresh)
    assert not torch.allclose(first, second)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"target": 99}, IndexError, "out of range"),
    ({"target": [0, 1, 2]}, ValueError, "entries"),
    ({"relevance": torch.ones(3)}, ValueError, "shaped like the model output"),
    ({"relevance": lambda o: o * float("inf")}, ValueError, "NaN or infinite"),
])
def test_bad_arguments(kwargs: dict[str, object], error: type, message: str) -> None:
    lrp = lumos.LRP(small_mlp())
    with pytest.raises(error, match=message):
        lrp.attribute(torch.randn(2, 20, dtype=torch.float64), **kwargs)  # type: ignore[arg-type]


def test_bad_inputs_and_constructor() -> None:
    lrp = lumos.LRP(small_mlp())
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        lrp.attribute([1.0, 2.0], 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"nn\.Module"):
        lumos.LRP(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Composite"):
        lumos.LRP(small_mlp(), composite=rules.Epsilon())  # type: ignore[arg-type]


def test_float32_matches_float64() -> None:
    model = small_cnn()
    x = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    comp = composites.EpsilonGammaBox(0.0, 1.0)
    want = lumos.LRP(model, comp).attribute(x, 3)
    got = lumos.LRP(model.float(), comp).attribute(x.float(), 3)
    torch.testing.assert_close(got.double(), want, rtol=1e-3, atol=1e-6 * float(want.abs().max()))


@pytest.mark.parametrize("options", [
    {"kernel_size": 2},
    {"kernel_size": 3, "stride": 2, "padding": 1},
    {"kernel_size": 3, "stride": 1, "dilation": 2},
    {"kernel_size": 2, "ceil_mode": True},
])
def test_channels_last_pooling_routes_as_max_pool(options: dict[str, object]) -> None:
    from lumos._pooling import ChannelsLastMaxPool2d

    # ties everywhere: ReLU zeros and a few integer levels, so the winner of a window matters
    x = torch.randint(-2, 3, (3, 5, 11, 13)).float().clamp(min=0)
    plain = nn.MaxPool2d(**options)  # type: ignore[arg-type]
    fast = ChannelsLastMaxPool2d(**options)  # type: ignore[arg-type]
    g = torch.randn(plain(x).shape)
    results = []
    for pool in (plain, fast):
        leaf = x.clone().requires_grad_(True)
        out = pool(leaf)
        (grad,) = torch.autograd.grad(out, leaf, g)
        results.append((out.detach(), grad))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])
    with_indices = ChannelsLastMaxPool2d(return_indices=True, **options)  # type: ignore[arg-type]
    assert torch.equal(with_indices(x)[1], nn.MaxPool2d(return_indices=True, **options)(x)[1])


def test_cpu_programs_pool_channels_last_with_the_same_relevance() -> None:
    from lumos._pooling import ChannelsLastMaxPool2d

    model = small_cnn().float()
    x = torch.rand(4, 1, 12, 12)
    lrp = lumos.LRP(model, composites.Epsilon(1e-6))
    got = lrp.attribute(x, target=[0, 1, 2, 3])
    program = lrp.program(x)
    assert any(isinstance(m, ChannelsLastMaxPool2d) for m in program.gm.modules())
    assert not any(isinstance(m, ChannelsLastMaxPool2d) for m in model.modules())
    double = lumos.LRP(model.double(), composites.Epsilon(1e-6)).attribute(
        x.double(), target=[0, 1, 2, 3])
    torch.testing.assert_close(got.double(), double, rtol=1e-4, atol=1e-6)


def test_a_rule_a_pooling_cannot_take_names_the_users_type() -> None:
    model = small_cnn().float()
    composite = composites.Composite(layer_map=[(nn.MaxPool2d, rules.ZPlus())])
    with pytest.raises(lumos.lrp.LRPUnsupportedError, match=r"'4' is MaxPool2d; map it"):
        lumos.LRP(model, composite).attribute(torch.rand(1, 1, 12, 12), target=0)
