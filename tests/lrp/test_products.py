"""Products of activations (gates, squeeze-excitation), differences, resampling: preparation
gives the same outputs with the right module types, each rule equals its formula written as
dense math (float64), and a gated block with zero biases and epsilon conserves relevance.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import lumos
from helpers import untouched
from lrp.test_prepare import Net, Wrap, _called, _same_outputs
from lrp.test_rules import dense, ratio
from lumos.lrp import composites, rules
from lumos.lrp.capture.prepare import prepare
from lumos.lrp.engine.products import product_step
from lumos.lrp.engine.steps import Run
from lumos.lrp.errors import LRPUnsupportedError
from lumos.lrp.ops.layers import Difference, Resample
from lumos.lrp.ops.products import Product

X = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
RULES = {"uniform": rules.Uniform(), "gate": rules.ConstantGate()}


def _relevance(module: Product, rule: rules.Rule, a: Tensor, b: Tensor,
               r: Tensor) -> tuple[Tensor, Tensor]:
    """Input relevances ``(a * g_a, b * g_b)`` of one product step started from ``r``."""
    a, b = (t.detach().clone().requires_grad_(t.requires_grad) for t in (a, b))
    y = product_step(module, rule)(None, None, (a, b), {})
    live = [t for t in (a, b) if t.requires_grad]
    grads = torch.autograd.grad(y, live, r / y.detach(), allow_unused=True)
    found = dict(zip((id(t) for t in live), grads, strict=True))
    return tuple(t.detach() * found[id(t)] if found.get(id(t)) is not None
                 else torch.zeros_like(t) for t in (a, b))  # type: ignore[return-value]


def _random(*shape: int, live: bool = True) -> Tensor:
    return torch.randn(*shape, dtype=torch.float64).requires_grad_(live)


@pytest.mark.parametrize("rule_name", RULES)
def test_product_rules_equal_their_formulas(rule_name: str) -> None:
    """Uniform: R_a = R_b = R_y / 2; constant gate: the gated input gets R_y, the gate nothing.
    A broadcast factor's relevance is summed over the broadcast dimensions."""
    rule = RULES[rule_name]
    x, s = _random(2, 4, 5, 5), _random(2, 4, 1, 1)   # squeeze-excitation: s is broadcast
    r = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    got_x, got_s = _relevance(Product(gate=None), rule, x, s, r)
    half = r / 2
    want_x = half if rule_name == "uniform" else r
    want_s = half.sum((2, 3), keepdim=True) if rule_name == "uniform" else torch.zeros_like(s)
    torch.testing.assert_close(got_x, want_x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_s, want_s, rtol=1e-12, atol=1e-12)
    # a gate found by preparation (index 0), same shapes
    a, b, r7 = _random(2, 7), _random(2, 7), torch.randn(2, 7, dtype=torch.float64)
    got_a, got_b = _relevance(Product(gate=0), rule, a, b, r7)
    torch.testing.assert_close(got_b, r7 / 2 if rule_name == "uniform" else r7)
    torch.testing.assert_close(got_a, r7 / 2 if rule_name == "uniform" else 0 * r7)
    # a factor that does not depend on the input passes everything to the other
    const = _random(2, 7, live=False)
    got_a, got_c = _relevance(Product(gate=1), rule, a, const, r7)
    torch.testing.assert_close(got_a, r7)
    assert not got_c.any()
    # a product by a constant (x * c, x / c): a fixed diagonal map, the activation keeps all
    for module in (Product(factor=torch.rand(7, dtype=torch.float64) + 0.5),
                   Product(factor=6.0, divide=True)):
        leaf = a.detach().clone().requires_grad_(True)
        y = product_step(module, rule)(None, None, (leaf,), {})
        (grad,) = torch.autograd.grad(y, leaf, r7 / y.detach())
        torch.testing.assert_close(leaf.detach() * grad, r7, rtol=1e-12, atol=1e-12)


def test_product_with_no_gate_falls_back_to_uniform() -> None:
    a, b, r = _random(3, 4), _random(3, 4), torch.randn(3, 4, dtype=torch.float64)
    for rule in RULES.values():
        got_a, got_b = _relevance(Product(gate=None), rule, a, b, r)
        torch.testing.assert_close(got_a, r / 2)
        torch.testing.assert_close(got_b, r / 2)


class Gated(nn.Module):
    """``fn(a(x), b(x))`` of two convolution branches."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.a(x), self.b(x))


class LayerScale(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.scale = nn.Parameter(torch.rand(3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * self.conv(x) / 6.0 * 0.5


def _torchvision_se() -> nn.Module:
    from torchvision.ops import SqueezeExcitation

    return nn.Sequential(nn.Conv2d(3, 8, 1), SqueezeExcitation(8, 2))


@pytest.mark.parametrize("model, kinds, gate", [
    (Gated(lambda a, b: a * torch.sigmoid(b)), [nn.Conv2d, nn.Conv2d, nn.Sigmoid, Product], 1),
    (Gated(lambda a, b: torch.mul(F.hardsigmoid(b), a)),
     [nn.Conv2d, nn.Conv2d, nn.Hardsigmoid, Product], 0),
    (Gated(lambda a, b: operator.mul(a, b.relu())), [nn.Conv2d, nn.Conv2d, nn.ReLU, Product],
     None),
    (Gated(lambda a, b: a.mul(b.mean((2, 3), keepdim=True).sigmoid())), None, 1),
    (Gated(lambda a, b: a - b), [nn.Conv2d, nn.Conv2d, Difference], None),
    (Wrap(lambda x: x * torch.sigmoid(x)), [nn.Conv2d, nn.SiLU], None),
    (Wrap(lambda x: F.hardsigmoid(x) * x), [nn.Conv2d, nn.Hardswish], None),
    (LayerScale(), [nn.Conv2d, Product, Product, Product], None),
    (_torchvision_se(), None, 0),
], ids=["sigmoid-gate", "hardsigmoid-gate", "plain-product", "se-by-hand", "difference",
        "silu", "hardswish", "constants", "torchvision-se"])
def test_products_are_canonized(model: nn.Module, kinds: list[type] | None,
                                gate: int | None) -> None:
    gm = _same_outputs(model.double().eval(), X)
    called = _called(gm)
    if kinds is not None:
        assert [type(m) for m in called] == kinds
    gated = [m for m in called if isinstance(m, Product) and m.factor is None]
    assert all(m.gate == gate for m in gated)


def test_timm_squeeze_excitation_modules() -> None:
    from timm.layers import EffectiveSEModule, SEModule

    for block in (SEModule(8), EffectiveSEModule(8)):
        model = nn.Sequential(nn.Conv2d(3, 8, 1), block).double().eval()
        x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
        gm = _same_outputs(model, x)
        (product,) = [m for m in _called(gm) if isinstance(m, Product)]
        assert product.gate == 1, type(block).__name__


class _SEBlock(nn.Module):
    """Conv -> ReLU -> squeeze-excitation (mean, conv, ReLU, conv, sigmoid) -> product -> head,
    without biases."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.fc1, self.fc2 = nn.Conv2d(6, 3, 1, bias=False), nn.Conv2d(3, 6, 1, bias=False)
        self.head = nn.Linear(6 * 36, 4, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.conv(x))
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(h.mean((2, 3), keepdim=True)))))
        return self.head((h * s).flatten(1))


@pytest.mark.parametrize("rule_name", RULES)
def test_gated_block_conserves_relevance(rule_name: str) -> None:
    """Zero biases and epsilon: the product passes the whole relevance, and so does every
    layer down to the input (per-layer report, float64, 1e-8)."""
    torch.manual_seed(0)
    model = _SEBlock().double().eval()
    composite = composites.Epsilon(0.0, layer_map=[(composites.PRODUCT, RULES[rule_name])])
    with untouched(model):
        exp = lumos.LRP(model, composite).explain(X, target=1)
    out = exp.layers["output"]
    product = next(v for k, v in exp.layers.items() if "lumos_mul" in k)
    torch.testing.assert_close(product, out, rtol=1e-8, atol=0)
    torch.testing.assert_close(exp.layers["input"], out, rtol=1e-8, atol=0)
    gate_layer = exp.layers["fc1"]
    want = out / 2 if rule_name == "uniform" else 0 * out
    torch.testing.assert_close(gate_layer, want, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("kwargs", [
    {"scale_factor": 2, "mode": "nearest"},
    {"size": (5, 7), "mode": "bilinear", "align_corners": False},
    {"scale_factor": 1.5, "mode": "bicubic", "align_corners": True},
], ids=["nearest", "bilinear", "bicubic"])
def test_resampling_is_the_epsilon_rule_on_its_linear_map(kwargs: dict[str, object]) -> None:
    upsample = nn.Upsample(**kwargs)   # type: ignore[arg-type]
    model = nn.Sequential(upsample, nn.Flatten()).double().eval()
    gm = _same_outputs(nn.Sequential(nn.Conv2d(3, 3, 1), upsample).double().eval(), X)
    assert [type(m) for m in _called(gm)] == [nn.Conv2d, Resample]
    x = X[:, :2, :4, :4]
    w, _ = dense(upsample, tuple(x.shape[1:]))
    r = torch.randn(2, w.shape[0], dtype=torch.float64)
    got = lumos.LRP(model, composites.EpsilonPlus()).attribute(x, relevance=r)
    want = torch.stack([ratio(w * xi.reshape(-1), w @ xi.reshape(-1), ri)
                        for xi, ri in zip(x, r, strict=True)])
    torch.testing.assert_close(got.reshape(2, -1), want, rtol=1e-10, atol=1e-12)


def test_difference_is_a_sum_with_a_negated_input() -> None:
    """``y = a - b``: R_a = a R / (y + eps sign y), R_b = -b R / (y + eps sign y)."""
    model = Wrap(lambda x: x[:, 0] - x[:, 1])
    model.conv = nn.Identity()   # type: ignore[assignment]
    x = X[:, :2]
    r = torch.randn(2, 6, 6, dtype=torch.float64)
    got = lumos.LRP(model.double(), composites.EpsilonPlus()).attribute(x, relevance=r)
    y = x[:, 0] - x[:, 1]
    den = rules.stabilize(y, 1e-6)
    want = torch.stack([x[:, 0] * r / den, -x[:, 1] * r / den], 1)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


class _FunctionalBN(nn.Module):
    def __init__(self, training: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.training_flag = training
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
            self.bn.weight.uniform_(0.5, 1.5)

    def forward(self, x: Tensor) -> Tensor:
        bn = self.bn
        y = F.batch_norm(self.conv(x), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                         self.training_flag, 0.1, bn.eps)
        return F.batch_norm(torch.relu(y), bn.running_mean, bn.running_var, None, None,
                            False, 0.1, 1e-3)


def test_eval_no_ops_and_functional_batchnorm() -> None:
    """F.batch_norm folds like a BatchNorm (or becomes Affine), torchvision's stochastic
    depth and timm's DropPath vanish in eval mode, timm's BatchNormAct2d folds."""
    from timm.layers import BatchNormAct2d, DropPath
    from torchvision.ops import StochasticDepth

    from lumos.lrp.ops.layers import Affine

    gm = _same_outputs(_FunctionalBN().double().eval(), X)
    assert [type(m) for m in _called(gm)] == [nn.Conv2d, nn.ReLU, Affine]
    model = nn.Sequential(nn.Conv2d(3, 4, 3), StochasticDepth(0.5, "row"), DropPath(0.5),
                          BatchNormAct2d(4), nn.Dropout(0.3))
    gm = _same_outputs(model.double().eval(), X)
    assert [type(m) for m in _called(gm)] == [nn.Conv2d, nn.ReLU]
    model = _FunctionalBN(training=True).double().eval()
    with untouched(model), pytest.raises(LRPUnsupportedError, match=r"batch statistics"):
        prepare(model, X[:1])


def test_refused_operation_names_operation_path_and_line() -> None:
    model = Net(Wrap(lambda x: x.cumsum(-1))).double()   # x / y by an activation: a normaliser
    with untouched(model), pytest.raises(LRPUnsupportedError) as info:
        prepare(model, torch.randn(1, 3, 8, 8, dtype=torch.float64))
    message = str(info.value)
    assert "Tensor.cumsum" in message and "'block'" in message
    assert re.search(r"test_products\.py:\d+ \(", message), message


class _LinearAttention(nn.Module):
    """EfficientViT's linear attention (``q (k^T v) / q (k^T 1)``): computed in float32 inside
    a float64 model, as timm's ``LiteMLA`` does, so the division's rounding is float32's."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(6, 18)
        self.proj = nn.Linear(6, 4)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x.flatten(2).transpose(1, 2)).float().relu().chunk(3, dim=-1)
        v = F.pad(v, (0, 1), value=1.0)
        out = q @ (k.transpose(-1, -2) @ v)
        out = out[..., :-1] / (out[..., -1:] + 1e-15)
        y: Tensor = self.proj(out.to(x.dtype)).mean(1)
        return y


def test_division_by_a_normaliser_computes_the_models_quotient() -> None:
    """The step of ``a / b`` computes ``a / b`` forward, not ``a * (1 / b)`` (two roundings:
    1e-7 of EfficientViT's float64 scores, whose attention runs in float32); ``b`` takes no
    relevance and ``a`` all of it, ``R_a = R_y``."""
    torch.manual_seed(0)
    model = _LinearAttention().double().eval()
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64)
    program = lumos.LRP(model, composites.CPLRP()).program(x)
    divisions = [n for n in program.steps
                 if getattr(program.gm.get_submodule(str(n.target)), "divide", False)]
    assert divisions
    with torch.enable_grad():
        out = program.run(x.clone().requires_grad_(True), Run(False))
    with torch.no_grad():
        plain = program.gm(x)
    assert float((out.detach() - plain).abs().max() / plain.abs().max()) <= 1e-12
    a, b = _random(2, 3, 5), _random(2, 3, 1).detach().abs().add(0.5)
    r = torch.randn(2, 3, 5, dtype=torch.float64)
    module = Product(divide=True)
    assert torch.equal(product_step(module, rules.ConstantGate())(None, None, (a, b), {}),
                       a / b)
    got_a, got_b = _relevance(module, rules.ConstantGate(), a, b, r)
    torch.testing.assert_close(got_a, r, rtol=1e-12, atol=1e-12)
    assert not got_b.any()
