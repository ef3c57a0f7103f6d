"""Operations the model sweep (``bench/model_sweep.py``) found unexplained, on small models.

Padding with a non-zero constant (EfficientViT's linear attention pads values with ones), ``-x``
(rotary embeddings' ``cat([-x2, x1])``), a division by an activation (linear attention's
normaliser), a buffer expanded to the batch size in forward (ConViT), and a division by a value
without relevance, whose LRP pass once multiplied instead: each explained, its score the model's
own, and conservative in float64 with biases zeroed.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import lumos
from helpers import untouched
from lrp.conservation import assert_conserves, assert_explains, conservation_gap


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


CASES = {
    "constant pads": (_ConstantPads, (3, 10, 10)),
    "rotary -x": (_Rotary, (8,)),
    "divide by an activation": (lambda: _Normalised(True), (6,)),
    "divide by a norm": (lambda: _Normalised(False), (6,)),
    "buffer expanded to the batch": (_ExpandedBuffer, (8,)),
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
