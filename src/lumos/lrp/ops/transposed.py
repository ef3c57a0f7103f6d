"""Transposed convolutions (``nn.ConvTranspose1d/2d/3d``, ``F.conv_transpose2d``) as convolutions.

A transposed convolution with stride ``s``, padding ``p``, output padding ``q`` and dilation
``d`` equals a stride-1 convolution of the input spread out with ``s - 1`` zeros between its
elements and padded by ``d (k - 1) - p`` (plus ``q`` at the end), whose weight is the transposed
convolution's with input and output channels swapped (per group) and the kernel flipped.
Preparation rewrites it so: the spreading is a :class:`~lumos.lrp.ops.layers.Reshape` (each
element a copy of an input element or a zero) and the convolution an ``nn.ConvNd`` with those
weights, so every z-rule (Epsilon, Gamma, z+) applies to it. The inserted zeros contribute
nothing to any ``z_ij``, so the relevance equals that of the rule on the transposed convolution
itself.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from lumos.lrp.capture.graph import PrepGraph, node_inputs
from lumos.lrp.capture.values import VALUE
from lumos.lrp.ops.handlers import op_name
from lumos.lrp.ops.layers import Reshape

_NAMES = ("weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")


def _tuple(value: Any, d: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value),) * d


def spread(x: Tensor, stride: tuple[int, ...], pad: tuple[int, ...]) -> Tensor:
    """``x`` with ``stride - 1`` zeros between its spatial elements, then ``F.pad(.., pad)``
    (negative entries crop)."""
    d = len(stride)
    if any(s > 1 for s in stride):
        size = tuple((n - 1) * s + 1 for n, s in zip(x.shape[-d:], stride, strict=True))
        out = x.new_zeros(*x.shape[:-d], *size)
        index: Any = (Ellipsis, *[slice(None, None, s) for s in stride])
        out[index] = x
        x = out
    return F.pad(x, pad) if any(pad) else x


def conv_weight(w: Tensor, groups: int) -> Tensor:
    """The convolution weight ``(out, in / groups, *k)`` of a transposed convolution's
    ``(in, out / groups, *k)``: channels swapped per group, kernel flipped."""
    cin, cout_g, *k = w.shape
    per = w.reshape(groups, cin // groups, cout_g, *k).transpose(1, 2)
    conv = per.reshape(groups * cout_g, cin // groups, *k)
    return conv.flip(dims=tuple(range(2, conv.dim())))


def conv_transpose(g: PrepGraph, node: fx.Node) -> None:
    """Rewrite ``conv_transposeNd(x, weight, bias, ...)`` as described in the module docstring."""
    params: dict[str, Any] = dict(zip(_NAMES, node.args[1:], strict=False))
    params.update(node.kwargs)
    weight: Any = params.pop("weight")
    bias: Any = params.pop("bias", None)
    if not all(isinstance(p, fx.Node) and p.op == "get_attr" for p in (weight, bias)
               if p is not None) or any(True for _ in node_inputs(params)):
        raise g.error(node, f"{op_name(node)} with weights or sizes computed in the graph",
                      "use parameters of the model as weight and bias")
    w = g.attrs[str(weight.target)]
    b = None if bias is None else g.attrs[str(bias.target)]
    d, groups = w.dim() - 2, int(params.get("groups", 1))
    stride = _tuple(params.get("stride", 1), d)
    padding = _tuple(params.get("padding", 0), d)
    extra = _tuple(params.get("output_padding", 0), d)
    dilation = _tuple(params.get("dilation", 1), d)
    pad: list[int] = []
    for k, p, q, dil in reversed(list(zip(w.shape[2:], padding, extra, dilation,
                                          strict=True))):
        pad += [dil * (k - 1) - p, dil * (k - 1) - p + q]
    kind = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[d - 1]
    cw = conv_weight(w.detach(), groups)
    spacing: Any = dilation
    size: Any = tuple(cw.shape[2:])
    conv = kind(cw.shape[1] * groups, cw.shape[0], size, dilation=spacing,
                groups=groups, bias=b is not None, device="meta")
    conv.weight = nn.Parameter(cw, requires_grad=False)
    if b is not None:
        conv.bias = nn.Parameter(b.detach(), requires_grad=False)
    fn = partial(spread, stride=stride, pad=tuple(pad))
    spread_x = g.insert(node, Reshape(fn, "conv_transpose_spread"), (node.args[0],), "spread")
    spread_x.meta[VALUE] = fn(g.value(node.args[0]))
    base = str(weight.target).rpartition(".")[0] or node.name
    g.replace(node, conv, (spread_x,), name=g.new_name(base))


def handlers() -> dict[Any, Any]:
    """The entries of this module for :mod:`lumos.lrp.ops.canonize`'s table."""
    fns = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d, torch.conv_transpose1d,
           torch.conv_transpose2d, torch.conv_transpose3d)
    return dict.fromkeys(fns, conv_transpose)


__all__ = ["conv_transpose", "conv_weight", "handlers", "spread"]
