"""Every LRP rule against its formula written as dense matrix math, in float64.

A Linear or Conv layer is turned into its Jacobian matrix ``W`` (outputs x inputs) and bias
vector ``b``; each rule's relevance is then computed with explicit sums over that matrix and
compared to what the engine gives for a one-layer model started from a random output relevance.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import lumos
from lumos.lrp import composites, rules
from lumos.lrp.ops.layers import Affine
from lumos.lrp.rules import stabilize

EPS = 1e-6


def dense(layer: nn.Module, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """The layer as ``y = W x + b`` over flattened single samples."""
    n_in = int(torch.tensor(shape).prod())
    basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *shape)
    with torch.no_grad():
        b = layer(torch.zeros(1, *shape, dtype=torch.float64)).reshape(-1)
        w = (layer(basis).reshape(n_in, -1) - b).T
    return w, b


def pos(t: Tensor) -> Tensor:
    return t.clamp(min=0)


def neg(t: Tensor) -> Tensor:
    return t.clamp(max=0)


def ratio(num: Tensor, den: Tensor, r: Tensor) -> Tensor:
    """sum_k num[k, j] * r_k / stabilize(den_k): relevance of inputs j."""
    return (num * (r / stabilize(den, EPS))[:, None]).sum(0)


def formula(name: str, w: Tensor, b: Tensor, x: Tensor, r: Tensor) -> Tensor:
    """Input relevance of one sample by the textbook formula of rule ``name``."""
    z = w @ x + b
    wx = w * x  # contribution of input j to output k
    if name == "epsilon":
        return ratio(wx, z, r)
    if name == "zplus":
        num = pos(w) * pos(x) + neg(w) * neg(x)
        return ratio(num, num.sum(1) + pos(b), r)
    if name == "alphabeta":
        p = pos(w) * pos(x) + neg(w) * neg(x)
        n = neg(w) * pos(x) + pos(w) * neg(x)
        return 2 * ratio(p, p.sum(1) + pos(b), r) - ratio(n, n.sum(1) + neg(b), r)
    if name == "gamma":
        g = 0.25
        up = (w + g * pos(w)) * pos(x) + (w + g * neg(w)) * neg(x)
        down = (w + g * neg(w)) * pos(x) + (w + g * pos(w)) * neg(x)
        r_up, r_down = r * (z > 0), r * (z < 0)
        return (ratio(up, up.sum(1) + b + g * pos(b), r_up)
                + ratio(down, down.sum(1) + b + g * neg(b), r_down))
    if name == "zbox":
        low, high = -2.0, 3.0
        num = wx - low * pos(w) - high * neg(w)
        return ratio(num, num.sum(1), r)
    if name == "flat":
        ones = (w != 0).to(w.dtype)
        return ratio(ones, ones.sum(1), r)
    if name == "wsquare":
        return ratio(w * w, (w * w).sum(1) + b * b, r)
    raise ValueError(name)


RULES = {"epsilon": rules.Epsilon(), "zplus": rules.ZPlus(), "alphabeta": rules.AlphaBeta(),
         "gamma": rules.Gamma(), "zbox": rules.ZBox(-2.0, 3.0), "flat": rules.Flat(),
         "wsquare": rules.WSquare()}
LAYERS = {
    "linear": (lambda: nn.Linear(7, 5), (7,)),
    "conv2d": (lambda: nn.Conv2d(2, 3, 3, padding=1), (2, 4, 4)),
    "conv1d-grouped-strided": (lambda: nn.Conv1d(4, 6, 3, stride=2, groups=2), (4, 9)),
    # few input channels and a stride: transposed products run by output phase
    "conv2d-strided-few-channels": (
        lambda: nn.Conv2d(2, 3, (3, 4), stride=2, padding=(1, 2)), (2, 7, 8)),
    "conv2d-strided": (lambda: nn.Conv2d(5, 3, 3, stride=3), (5, 8, 7)),
}


def lrp_of(layer: nn.Module, rule: rules.Rule, x: Tensor, r: Tensor,
           before: nn.Module | None = None, after: nn.Module | None = None) -> Tensor:
    parts = [m for m in (before, layer, after) if m is not None]
    model = nn.Sequential(*parts, nn.Flatten()).double().eval()
    group = (*composites.WEIGHTED, Affine)
    lrp = lumos.LRP(model, composites.Composite(layer_map=[(group, rule)]))
    return lrp.attribute(x, relevance=r)


@pytest.mark.parametrize("layer_name", LAYERS)
@pytest.mark.parametrize("rule_name", RULES)
def test_rule_equals_dense_formula(rule_name: str, layer_name: str) -> None:
    make, shape = LAYERS[layer_name]
    layer = make().double()
    nn.init.normal_(layer.bias, std=0.5)
    x = torch.randn(2, *shape, dtype=torch.float64)
    w, b = dense(layer, shape)
    r = torch.randn(2, w.shape[0], dtype=torch.float64)
    got = lrp_of(layer, RULES[rule_name], x, r)
    want = torch.stack([formula(rule_name, w, b, xi.reshape(-1), ri)
                        for xi, ri in zip(x, r, strict=True)])
    torch.testing.assert_close(got.reshape(2, -1), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("relu_after", [True, False])
@pytest.mark.parametrize("rule_name", ["gamma", "zplus", "alphabeta", "epsilon"])
def test_fast_paths_for_relu_inputs_and_outputs(rule_name: str, relu_after: bool) -> None:
    """Non-negative inputs (after a ReLU) and ReLU outputs take shortcuts; same numbers."""
    layer = nn.Conv2d(3, 4, 3, padding=1).double()
    nn.init.normal_(layer.bias, std=0.5)
    with torch.no_grad():
        layer.bias[0] = -1e-6  # an output whose stabilised denominator can meet zero
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    x[:, :, :2] = 0.0
    w, b = dense(layer, (3, 5, 5))
    r = torch.randn(2, w.shape[0], dtype=torch.float64)
    got = lrp_of(layer, RULES[rule_name], x, r, before=nn.ReLU(),
                 after=nn.ReLU() if relu_after else None)
    xr = x.clamp(min=0).reshape(2, -1)
    z = xr @ w.T + b
    want = torch.stack([formula(rule_name, w, b, xi, ri * (zi > 0) if relu_after else ri)
                        for xi, ri, zi in zip(xr, r, z, strict=True)])
    assert bool(torch.isfinite(got).all())
    torch.testing.assert_close((got.reshape(2, -1)), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sign", ["nonneg", "nonpos"])
@pytest.mark.parametrize("rule_name", ["zplus", "gamma", "alphabeta"])
def test_one_signed_inputs_without_a_relu_in_front(rule_name: str, sign: str) -> None:
    """Inputs of one sign (with zeros) that no ReLU guarantees: the layer cannot know their sign
    in advance (z+ takes its signed pair), and the numbers are still the formula's."""
    layer = nn.Conv2d(3, 4, 3, padding=1).double()
    nn.init.normal_(layer.bias, std=0.5)
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64).abs()
    x[:, :, :2] = 0.0
    x = x if sign == "nonneg" else -x
    w, b = dense(layer, (3, 5, 5))
    r = torch.randn(2, w.shape[0], dtype=torch.float64)
    got = lrp_of(layer, RULES[rule_name], x, r)
    want = torch.stack([formula(rule_name, w, b, xi.reshape(-1), ri)
                        for xi, ri in zip(x, r, strict=True)])
    assert bool(torch.isfinite(got).all())
    torch.testing.assert_close(got.reshape(2, -1), want, rtol=1e-10, atol=1e-12)


class _SumReLU(nn.Module):
    """``relu(a(x) + b(x))``: a residual sum whose only user is a ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 4), nn.Linear(6, 4)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.a(x) + self.b(x))


def test_sum_before_relu_splits_relevance_in_proportion() -> None:
    model = _SumReLU().double().eval()
    x = torch.randn(3, 6, dtype=torch.float64)
    r = torch.randn(3, 4, dtype=torch.float64)
    got = lumos.LRP(model, composites.Epsilon()).attribute(x, relevance=r)
    wa, ba = dense(model.a, (6,))
    wb, bb = dense(model.b, (6,))
    for xi, ri, gi in zip(x, r, got, strict=True):
        za, zb = wa @ xi + ba, wb @ xi + bb
        ry = ri * (za + zb > 0)
        share = ry / stabilize(za + zb, EPS)
        want = formula("epsilon", wa, ba, xi, za * share) + formula("epsilon", wb, bb, xi,
                                                                     zb * share)
        torch.testing.assert_close(gi, want, rtol=1e-10, atol=1e-12)


def test_zbox_bounds_as_tensors_per_channel() -> None:
    layer = nn.Conv2d(2, 3, 3, padding=1).double()
    x = torch.rand(2, 2, 4, 4, dtype=torch.float64)
    low = torch.tensor([-1.0, -2.0], dtype=torch.float64).view(1, 2, 1, 1)
    high = torch.tensor([1.0, 2.0], dtype=torch.float64).view(1, 2, 1, 1)
    w, _ = dense(layer, (2, 4, 4))
    r = torch.randn(2, w.shape[0], dtype=torch.float64)
    got = lrp_of(layer, rules.ZBox(low, high), x, r).reshape(2, -1)
    lo, hi = low.expand(1, 2, 4, 4).reshape(-1), high.expand(1, 2, 4, 4).reshape(-1)
    for xi, ri, gi in zip(x.reshape(2, -1), r, got, strict=True):
        num = w * xi - lo * pos(w) - hi * neg(w)
        torch.testing.assert_close(gi, ratio(num, num.sum(1), ri), rtol=1e-10, atol=1e-12)


def test_zbox_follows_bounds_changed_in_place_and_new_input_sizes() -> None:
    """The bound terms are cached per input size; an in-place change of a bound is seen."""
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Flatten()).double().eval()
    low = torch.full((1, 2, 1, 1), -1.0, dtype=torch.float64)
    lrp = lumos.LRP(model, composites.LayerMap([(nn.Conv2d, rules.ZBox(low, 2.0))]))
    for size in (4, 5, 4):
        x = torch.rand(2, 2, size, size, dtype=torch.float64)
        fresh = lumos.LRP(model, composites.LayerMap([(nn.Conv2d, rules.ZBox(low.clone(), 2.0))]))
        torch.testing.assert_close(lrp.attribute(x, target=0), fresh.attribute(x, target=0),
                                   rtol=1e-12, atol=1e-12)
    before = lrp.attribute(x, target=0)
    low.fill_(-3.0)
    after = lrp.attribute(x, target=0)
    fresh = lumos.LRP(model, composites.LayerMap([(nn.Conv2d, rules.ZBox(low.clone(), 2.0))]))
    torch.testing.assert_close(after, fresh.attribute(x, target=0), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(before, after)


def test_affine_layer_takes_weighted_rules() -> None:
    affine = Affine(torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64))
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    r = torch.randn(2, 12, dtype=torch.float64)
    got = lrp_of(affine, rules.Epsilon(), x, r).reshape(2, -1)
    w, b = dense(affine, (3, 2, 2))
    want = torch.stack([formula("epsilon", w, b, xi, ri)
                        for xi, ri in zip(x.reshape(2, -1), r, strict=True)])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_norm_and_pass_rules() -> None:
    """Norm: R_i = x_i dy/dx_i R / y (average pooling); Pass: relevance unchanged (tanh)."""
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64)
    r = torch.randn(2, 4, dtype=torch.float64)
    pool = nn.Sequential(nn.AvgPool2d(2), nn.Flatten())
    got = lumos.LRP(pool, composites.LayerMap([])).attribute(x, relevance=r)
    y = pool(x)
    share = (r / stabilize(y, EPS)).reshape(2, 1, 2, 2).repeat_interleave(2, 2)
    want = x * share.repeat_interleave(2, 3) / 4
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    tanh = nn.Sequential(nn.Tanh(), nn.Flatten())
    r16 = torch.randn(2, 16, dtype=torch.float64)
    got = lumos.LRP(tanh, composites.LayerMap([])).attribute(x, relevance=r16)
    torch.testing.assert_close(got.reshape(2, -1), r16, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: rules.AlphaBeta(alpha=2.0, beta=2.0), "alpha - beta"),
    (lambda: rules.AlphaBeta(alpha=-1.0, beta=-2.0), "non-negative"),
    (lambda: rules.Gamma(gamma=-0.1), "gamma"),
    (lambda: rules.Epsilon(epsilon=-1.0), "epsilon"),
    (lambda: rules.ZBox(low="a", high=1.0), "low"),  # type: ignore[arg-type]
])
def test_bad_rule_parameters(make: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        make()  # type: ignore[operator]


def test_zplus_on_signed_inputs_in_float32_matches_float64() -> None:
    """The one-pass z+ denominator ``(z + |W| |x|) / 2`` (lumos.lrp.engine.signed) keeps float32
    close to float64 on a depthwise and a dense convolution with signed inputs."""
    for layer in (nn.Conv2d(8, 8, 7, padding=3, groups=8), nn.Conv2d(8, 16, 3, padding=1)):
        nn.init.normal_(layer.bias, std=0.5)
        x = torch.randn(2, 8, 12, 12, dtype=torch.float64)
        r = torch.randn(2, layer.out_channels * 144, dtype=torch.float64)
        out = {}
        for dtype in (torch.float64, torch.float32):
            model = nn.Sequential(layer, nn.Flatten()).to(dtype).eval()
            lrp = lumos.LRP(model, composites.Composite(layer_map=[(nn.Conv2d, rules.ZPlus())]))
            out[dtype] = lrp.attribute(x.to(dtype), relevance=r.to(dtype)).double()
        err = (out[torch.float32] - out[torch.float64]).norm() / out[torch.float64].norm()
        assert float(err) < 1e-5, float(err)


def test_zplus_on_signed_inputs_stays_finite_where_its_terms_cancel_in_rounding() -> None:
    """``W+ x+ + W- x-`` is exactly 0 here, and ``z / 2 + |W| |x| / 2`` cancels to 0 in
    float32 (1e8 swamps the rest): the denominator is still ``eps``, never 0 or negative."""
    conv = nn.Conv2d(2, 1, 1)  # a (zero) bias: eps rides in the bias of the |W| / 2 pass
    head = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([-1.0, 1.0]).view(1, 2, 1, 1))
        conv.bias.zero_()
        head.weight.fill_(1.0)
    model = nn.Sequential(conv, nn.Flatten(), head).eval()
    x = torch.tensor([1e8, -1.0]).view(1, 2, 1, 1)
    relevance = lumos.LRP(model, composites.EpsilonPlus()).attribute(x, target=0)
    assert bool(torch.isfinite(relevance).all()), relevance
