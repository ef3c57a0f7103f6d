"""The transformer rules equal their formulas, written as dense matrix math in float64.

Each model here feeds the rule's layer straight from (slices of) the input, so the input
relevance is the rule's own output for a random start relevance: MatMul under Uniform (one or
two factors on the input), softmax under AttnSoftmax and
ConstantWeights, LayerNorm / GroupNorm / RMSNorm (modules and functional) under StdConstant, and
multiplication by constants (Scale).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import lumos
from helpers import untouched
from lumos.lrp import composites
from lumos.lrp.ops.attention import MATMUL, SOFTMAX
from lumos.lrp.ops.norms import NORMS
from lumos.lrp.rules import ConstantWeights, Gradient, StdConstant, Uniform

L, D = 5, 4


class Fn(nn.Module):
    def __init__(self, fn: Callable[..., Tensor], **params: nn.Parameter) -> None:
        super().__init__()
        self.fn = fn
        for name, p in params.items():
            self.register_parameter(name, p)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self, x).flatten(1)


def _relevance(model: nn.Module, x: Tensor, layer_map: list[tuple[object, object]]
               ) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        out = model(x)
    start = torch.randn(out.shape, dtype=torch.float64)
    lrp = lumos.LRP(model, composites.LayerMap(layer_map))  # type: ignore[arg-type]
    with untouched(model):
        relevance = lrp.attribute(x, relevance=start)
    return relevance, start.view_as(out)


def test_matmul_uniform_is_its_formula() -> None:
    model = Fn(lambda m, x: x[:, :, :D] @ x[:, :, D:].transpose(1, 2))   # (n, L, L)
    x = torch.randn(2, L, 2 * D, dtype=torch.float64)
    relevance, start = _relevance(model, x, [(MATMUL, Uniform())])
    a, b = x[:, :, :D], x[:, :, D:].transpose(1, 2)
    share = start.view(2, L, L) / (2 * (a @ b))
    r_a = a * (share @ b.transpose(1, 2))
    r_b = b * (a.transpose(1, 2) @ share)
    expected = torch.cat([r_a, r_b.transpose(1, 2)], dim=2)
    torch.testing.assert_close(relevance, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(relevance.sum((1, 2)), start.sum(1), rtol=1e-10, atol=1e-12)


def test_matmul_with_a_constant_factor_gives_it_all() -> None:
    """Under CP-LRP the attention weights are constant: the values get the whole relevance."""
    def attention(m: nn.Module, x: Tensor) -> Tensor:
        return torch.softmax(x[:, :, :L], dim=-1) @ x[:, :, L:]
    x = torch.randn(2, L, L + D, dtype=torch.float64)
    relevance, start = _relevance(Fn(attention), x, [(MATMUL, Uniform()),
                                                     (SOFTMAX, ConstantWeights())])
    s, v = torch.softmax(x[:, :, :L], -1), x[:, :, L:]
    y = s @ v
    expected_v = v * (s.transpose(1, 2) @ (start.view_as(y) / y))
    torch.testing.assert_close(relevance[:, :, L:], expected_v, rtol=1e-10, atol=1e-12)
    assert bool((relevance[:, :, :L] == 0).all())
    torch.testing.assert_close(relevance.sum((1, 2)), start.sum(1), rtol=1e-10, atol=1e-12)


def test_softmax_attnlrp_rule_is_its_formula() -> None:
    x = torch.randn(3, L, D, dtype=torch.float64)
    relevance, start = _relevance(Fn(lambda m, x: F.softmax(x, dim=-1)), x,
                                  [(SOFTMAX, Gradient())])
    s, r = torch.softmax(x, -1), start.view_as(x)
    expected = x * (r - s * r.sum(-1, keepdim=True))   # R_x = x (R - s sum R)
    torch.testing.assert_close(relevance, expected, rtol=1e-10, atol=1e-12)


def _norm_jacobian(x: Tensor, centre: bool, w: Tensor) -> Tensor:
    """Dense Jacobian (per row) of x -> w * (x - mean) / std with std held constant."""
    n = x.shape[-1]
    c = x - x.mean(-1, keepdim=True) if centre else x
    std = (c.square().mean(-1, keepdim=True) + 1e-5).sqrt()
    centring = torch.eye(n, dtype=x.dtype) - (1.0 / n if centre else 0.0)
    return w[:, None] * centring / std[..., None]   # (..., n, n): J[i, j] = dy_i / dx_j


@pytest.mark.parametrize("kind", ["module", "functional", "rms"])
def test_layernorm_std_constant_is_its_formula(kind: str) -> None:
    w = torch.randn(D, dtype=torch.float64)
    if kind == "module":
        model: nn.Module = nn.Sequential(nn.LayerNorm(D, elementwise_affine=True), nn.Flatten())
        with torch.no_grad():
            model[0].weight.copy_(w)
            model[0].bias.zero_()
    elif kind == "functional":
        model = Fn(lambda m, x: F.layer_norm(x, (D,), m.w, None, 1e-5), w=nn.Parameter(w))
    else:
        model = nn.Sequential(nn.RMSNorm(D, eps=1e-5), nn.Flatten())
        with torch.no_grad():
            model[0].weight.copy_(w)
    model = model.double().eval()
    x = torch.randn(2, L, D, dtype=torch.float64)
    relevance, start = _relevance(model, x, [(NORMS, StdConstant())])
    jac = _norm_jacobian(x, kind != "rms", w)
    y = torch.einsum("blij,blj->bli", jac, x)
    expected = x * torch.einsum("blij,bli->blj", jac, start.view_as(y) / y)
    torch.testing.assert_close(relevance, expected, rtol=1e-9, atol=1e-12)
    # without bias the layer conserves relevance (the centring is linear)
    torch.testing.assert_close(relevance.sum((1, 2)), start.sum(1), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", [(D,), (L, D)])
@pytest.mark.parametrize("affine", [True, False])
def test_fused_layernorm_step_equals_the_decomposed_one(shape: tuple[int, ...],
                                                        affine: bool) -> None:
    """The one-call LayerNorm step: same value and same std-constant backward."""
    from lumos.lrp.engine.norms import norm_step
    from lumos.lrp.ops.norms import Normalization

    w, b = (torch.randn(shape, dtype=torch.float64) for _ in range(2))
    norm = Normalization("layer", shape, 1e-5, w if affine else None, b if affine else None)
    x = torch.randn(3, L, D, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, L, D, dtype=torch.float64)
    fused = norm_step(norm, StdConstant())(None, None, (x,), {})
    plain = norm.normalize(x, constant_std=True)
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.autograd.grad(fused, x, g)[0],
                               torch.autograd.grad(plain, x, g)[0], rtol=1e-10, atol=1e-12)


def test_groupnorm_std_constant_is_its_formula() -> None:
    norm = nn.GroupNorm(2, 4).double()
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.zero_()
    model = nn.Sequential(norm, nn.Flatten()).eval()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    relevance, start = _relevance(model, x, [(NORMS, StdConstant())])
    groups = x.reshape(2, 2, 18)
    w = norm.weight.detach().repeat_interleave(9).view(2, 18)   # per element of each group
    jac = torch.stack([_norm_jacobian(groups[:, g], True, w[g]) for g in range(2)], 1)
    y = torch.einsum("bgij,bgj->bgi", jac, groups)
    expected = groups * torch.einsum("bgij,bgi->bgj", jac, start.view_as(y) / y)
    torch.testing.assert_close(relevance, expected.view_as(x), rtol=1e-9, atol=1e-12)


def test_scale_by_constants_passes_relevance() -> None:
    gamma = nn.Parameter(torch.randn(D, dtype=torch.float64))
    model = Fn(lambda m, x: (x * 0.5) * m.gamma / 3.0, gamma=gamma).eval()
    x = torch.randn(2, L, D, dtype=torch.float64)
    relevance, start = _relevance(model, x, [])
    torch.testing.assert_close(relevance, start.view_as(x), rtol=1e-12, atol=1e-12)


def test_einsum_of_two_activations_is_a_matmul() -> None:
    x = torch.randn(2, L, 2 * D, dtype=torch.float64)
    torch.manual_seed(3)
    einsum, _ = _relevance(Fn(lambda m, x: torch.einsum("bik,bjk->bij", x[:, :, :D],
                                                        x[:, :, D:])), x, [])
    torch.manual_seed(3)
    matmul, _ = _relevance(Fn(lambda m, x: x[:, :, :D] @ x[:, :, D:].transpose(1, 2)), x, [])
    torch.testing.assert_close(einsum, matmul, rtol=1e-12, atol=1e-12)
