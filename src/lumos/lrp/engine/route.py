"""Autograd functions for layers without weights: a chosen backward scale, and relevance taps.

:class:`Route` carries the true value forward and a chosen gradient scale backward (``act(z) /
z`` for Pass, ``y / stabilise(y)`` for Norm). :class:`Tap` is the identity that records the
per-sample relevance ``sum(x * g)`` flowing into a layer (for the conservation report).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lumos.lrp.rules import EpsilonShare, apply_scale


class Route(torch.autograd.Function):
    """Forward: ``value`` (shaped like ``source``). Backward: ``grad * scale`` to ``source``."""

    @staticmethod
    def forward(ctx: Any, source: Tensor, value: Tensor, scale: Tensor | EpsilonShare) -> Tensor:
        ctx.scale = scale
        return value.view_as(value)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return apply_scale(grad, ctx.scale), None, None


def per_sample(t: Tensor, n: int, captured: tuple[int, ...] | None) -> Tensor:
    """Per-sample sums of ``t`` for a batch of ``n``.

    The batch is the dimension that grew ``n``-fold from the shape ``captured`` at preparation
    (on one sample); when none did (or nothing is known), the first. A dimension that folds the
    batch with another (Swin's windows, ``B * windows``) holds the samples as its major part.
    """
    dim = 0
    if captured is not None and n > 1 and len(captured) == t.dim():
        grown = [d for d, (a, b) in enumerate(zip(captured, t.shape, strict=True)) if b == a * n]
        dim = grown[0] if grown else 0
    if dim:
        t = t.movedim(dim, 0)
    return t.reshape(n, -1).sum(1)


class Tap(torch.autograd.Function):
    """Identity that records the per-sample relevance ``sum(x * g)`` flowing into a layer."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, record: list[Tensor], n: int,
                captured: tuple[int, ...] | None) -> Tensor:
        ctx.x, ctx.record, ctx.n, ctx.captured = x.detach(), record, n, captured
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        ctx.record.append(per_sample(ctx.x * grad, ctx.n, ctx.captured))
        return grad, None, None, None


__all__ = ["Route", "Tap", "per_sample"]
