"""Operations the model sweep (``bench/model_sweep.py``) found unexplained, on small models.

Padding with a non-zero constant (EfficientViT's linear attention pads values with ones), ``-x``
(rotary embeddings' ``cat([-x2, x1])``), a division by an activation (linear attention's
normaliser), a buffer expanded to the batch size in forward (ConViT), a division by a value
without relevance (whose LRP pass once multiplied instead), ``x[index] = v`` into activations
(MViTv2), einsum by a table computed from parameters (SAM) and transposed convolutions
(LowFormer): each explained, its score the model's own, and conservative in float64 with biases
zeroed; the transposed convolution also equals Zennit's rules on it.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import lumos
from helpers import untouched
from lrp.conservation import assert_conserves, assert_explains, conservation_gap
from lumos.lrp.errors import LRPUnsupportedError


class _ConstantPads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=False)
        self.pad = nn.ConstantPad2d(1, 2.0)
        self.fc = nn.Linear(4 * 10 * 10 + 2 * 11, 5, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.pad(self.conv(x))
        z = F.pad(y.mean(1), (0, 1), mode="constant", value=1.0)
        return self.fc(torch.cat([y.flatten(1), z[:, :2].flatten(1)], 1))


class _Rotary(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 8, bias=False), nn.Linear(8, 5, bias=False)
        self.register_buffer("cos", torch.rand(8) + 0.5)
        self.register_buffer("sin", torch.rand(8))

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc1(x)
        x1, x2 = h.chunk(2, -1)
        return self.fc2(h * self.cos + torch.cat([-x2, x1], -1) * self.sin)


class _Normalised(nn.Module):
    """``y[..., :-1] / (y[..., -1:] + eps)`` (linear attention) or ``y / sqrt(sum y)``."""

    def __init__(self, by_activation: bool) -> None:
        super().__init__()
        self.by_activation = by_activation
        self.fc1 = nn.Linear(6, 8, bias=False)
        self.fc2 = nn.Linear(7 if by_activation else 8, 5, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.relu(self.fc1(x))
        if self.by_activation:
            return self.fc2(y[..., :-1] / (y[..., -1:] + 1e-3))
        return self.fc2(y / torch.sqrt(y.sum(-1, keepdim=True) + 1e-3))


class _ExpandedBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("table", torch.randn(1, 4, 3), persistent=False)
        self.proj, self.fc = nn.Linear(3, 8, bias=False), nn.Linear(8, 5, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        pos = self.proj(self.table.expand(b, -1, -1)).mean(1)
        return self.fc(x + pos)


class _Assigned(nn.Module):
    """``y[:, 2:5] = y[:, 2:5] + f(x)`` and ``y[:, 0] = 1.0`` (MViTv2 writes its relative
    position terms into the attention scores so)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 8, bias=False), nn.Linear(6, 3, bias=False)
        self.fc = nn.Linear(8, 5, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.a(x)
        y[:, 2:5] = y[:, 2:5] + self.b(x)
        y[:, 0] = 1.0
        return self.fc(torch.softmax(y, -1) * y)


class _EinsumTable(nn.Module):
    """``einsum("bnc,kc->bnk", q, table)`` with a table computed from parameters (SAM's and
    MViTv2's relative positions)."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(4, 4, bias=False)
        self.table = nn.Parameter(torch.randn(3, 4))
        self.fc = nn.Linear(3 * 2, 5, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        q = self.q(x.reshape(len(x), 2, 4))
        rel = torch.einsum("bnc,kc->bnk", q, self.table * 0.5)
        return self.fc(rel.flatten(1))


CASES = {
    "constant pads": (_ConstantPads, (3, 10, 10)),
    "rotary -x": (_Rotary, (8,)),
    "divide by an activation": (lambda: _Normalised(True), (6,)),
    "divide by a norm": (lambda: _Normalised(False), (6,)),
    "buffer expanded to the batch": (_ExpandedBuffer, (8,)),
    "x[index] = v": (_Assigned, (6,)),
    "einsum by a constant table": (_EinsumTable, (8,)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_explained_as_the_model_scores_and_conservative(name: str) -> None:
    make, shape = CASES[name]
    torch.manual_seed(0)
    model = make().double().eval()
    x = torch.randn(3, *shape, dtype=torch.float64)
    with untouched(model):
        explanation = lumos.LRP(model).explain(x, target=1)
        assert_conserves(model, x, name)
    torch.testing.assert_close(explanation.output, model(x)[:, 1].detach())
    assert_explains(model.float(), x.float(), name)


def test_the_pad_border_is_a_sink() -> None:
    """The ones padded onto the border take their share of relevance as a reported sink."""
    torch.manual_seed(0)
    model = _ConstantPads().double().eval()
    gap, layers = conservation_gap(model, torch.randn(2, 3, 10, 10, dtype=torch.float64))
    sinks = [k for k in layers if k.endswith("(sink)")]
    assert gap <= 1e-7 and len(sinks) == 2   # epsilon 1e-9 on the scores
    assert all(bool(layers[k].abs().min() > 0) for k in sinks)


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2, stride=2),
                                    dict(kernel_size=3, stride=2, padding=1, output_padding=1,
                                         groups=2),
                                    dict(kernel_size=4, stride=3, padding=2, dilation=2)],
                         ids=["k2s2", "groups-outpad", "dilated"])
def test_transposed_convolution_equals_zennit(kwargs: dict[str, int]) -> None:
    """``nn.ConvTranspose2d`` (LowFormer's upsampling) is rewritten as a spread input and a
    convolution; the z-rules on it equal Zennit's on the transposed convolution itself."""
    zennit_attribution = pytest.importorskip("zennit.attribution")
    zennit_composites = pytest.importorskip("zennit.composites")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.ConvTranspose2d(8, 4, **kwargs),
                          nn.ReLU(), nn.Flatten(), nn.LazyLinear(5))
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    model(x.float())
    model = model.double().eval()
    for zennit_make, lumos_make in ((zennit_composites.EpsilonPlus,
                                     lumos.lrp.composites.EpsilonPlus),
                                    (zennit_composites.EpsilonAlpha2Beta1,
                                     lumos.lrp.composites.EpsilonAlpha2Beta1)):
        with zennit_attribution.Gradient(model, zennit_make()) as attributor:
            _, want = attributor(x, lambda out: torch.eye(5, dtype=out.dtype)[[1, 1]] * out)
        with untouched(model):
            got = lumos.LRP(model, lumos_make()).attribute(x, target=1)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
    assert_conserves(model, x, "ConvTranspose2d")


@pytest.mark.slow   # importing torch's compiler takes ~10 s
def test_a_compiled_model_is_explained_as_its_source() -> None:
    """``torch.compile(model)`` cannot be traced; LRP explains the model it wraps (the same
    function and parameters), and neither is changed."""
    torch.manual_seed(0)
    model = _Rotary().eval()
    compiled = torch.compile(model)
    x = torch.randn(2, 8)
    with untouched(compiled):
        got = lumos.LRP(compiled).attribute(x, target=1)
    torch.testing.assert_close(got, lumos.LRP(model).attribute(x, target=1))


def test_a_size_given_to_a_tensor_built_in_forward_gets_a_clear_error() -> None:
    """``torch.arange(n).expand(B, -1)`` with the traced batch size: torch refuses the traced
    size in the call; the error says what happened and what to do (a buffer is recorded)."""
    class Built(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 5)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(x + torch.arange(8.0).unsqueeze(0).expand(x.shape[0], -1))

    model = Built().eval()
    with untouched(model), pytest.raises(LRPUnsupportedError,
                                         match=r"register that tensor as a buffer"):
        lumos.LRP(model).attribute(torch.randn(2, 8), target=1)
