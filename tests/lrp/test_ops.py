"""The transposed products of :class:`lumos.lrp.ops.LinearOp` against PyTorch's own, in float64."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from lumos.lrp.engine.linear import LinearOp, _phase_transpose, _phase_weight

SHAPES = [(k, s, p, n) for k, s, p, n in itertools.product((1, 3, 4, 7), (2, 3), (0, 1, 3), (9, 12))
          if p < k]


@pytest.mark.parametrize(("kernel", "stride", "padding", "size"), SHAPES)
def test_phase_transpose_equals_the_input_gradient(kernel: int, stride: int, padding: int,
                                                   size: int) -> None:
    x = torch.randn(2, 3, size, size + 1, dtype=torch.float64)
    weight = torch.randn(5, 3, kernel, max(kernel - 1, 1), dtype=torch.float64)
    z = torch.nn.functional.conv2d(x, weight, None, stride, padding)
    g = torch.randn_like(z)
    want = torch.ops.aten.convolution_backward(
        g, x, weight, None, [stride, stride], [padding, padding], [1, 1], False, [0, 0], 1,
        [True, False, False])[0]
    got = _phase_transpose(g, _phase_weight(weight, stride), stride, (padding, padding),
                           tuple(x.shape[2:]))
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer", [
    nn.Conv2d(3, 4, 7, stride=2, padding=3),      # stacked, by phase
    nn.Conv2d(3, 4, 3, padding=1),                # stacked
    nn.Conv2d(6, 4, 3, stride=2, padding=1),      # one by one (too many channels)
    nn.Conv2d(4, 4, 3, stride=2, groups=2),       # one by one (groups)
    nn.Conv1d(2, 3, 3, stride=2),                 # stacked, not by phase
    nn.Linear(5, 3),
])
def test_several_weights_at_once_equal_one_at_a_time(layer: nn.Module) -> None:
    layer = layer.double()
    op = LinearOp(layer)
    shape = (2, 5) if isinstance(layer, nn.Linear) else (
        (2, layer.in_channels, 11) if isinstance(layer, nn.Conv1d)
        else (2, layer.in_channels, 11, 10))
    x = torch.randn(shape, dtype=torch.float64)
    g = torch.randn_like(layer(x))
    weights = [op.weight, op.weight.clamp(min=0), op.weight.clamp(max=0) * 2.0]
    together = op.transpose(g, weights, x)
    for again, first in zip(op.transpose(g, weights, x), together, strict=True):  # cached stack
        torch.testing.assert_close(again, first, rtol=0, atol=0)
    for w, got in zip(weights, together, strict=True):
        (want,) = torch.autograd.functional.vjp(
            lambda t, w=w: op.forward(op.pre(t), w, None), x, g)[1:]
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
