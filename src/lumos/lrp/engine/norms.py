"""Engine steps of normalisation layers: AttnLRP's identity rule (``1 / std`` constant)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lumos.lrp.ops.norms import Normalization
from lumos.lrp.rules import Rule


class _StdConstantLayerNorm(torch.autograd.Function):
    """LayerNorm forward in one fused call; backward with ``1 / std`` constant:
    ``g_x = rstd * (g w - mean(g w))`` over the normalised dimensions."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, module: Normalization) -> Tensor:
        out, _, rstd = torch.native_layer_norm(x, list(module.shape), module.weight,
                                               module.bias, module.eps)
        ctx.rstd, ctx.weight, ctx.dims = rstd, module.weight, module._dims(x)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
        gw = g if ctx.weight is None else g * ctx.weight
        shift = gw.mean(ctx.dims, keepdim=True).mul_(ctx.rstd).neg_()
        return torch.addcmul(shift, gw, ctx.rstd), None


def norm_step(module: Normalization, rule: Rule) -> Any:
    """The engine step of a :class:`Normalization` under ``rule``; None: the plain gradient."""
    if rule.kind != "std-constant":
        return None
    if module.kind == "layer":  # the common case, fused: 3 passes instead of about 11
        return lambda run, node, args, kwargs: _StdConstantLayerNorm.apply(args[0], module)
    return lambda run, node, args, kwargs: module.normalize(args[0], constant_std=True)



__all__ = ["norm_step"]
