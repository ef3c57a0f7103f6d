"""Products of activations under LRP: the shares of ``a * b``'s relevance each factor receives.

In the gradient-times-input view (relevance of a tensor ``t`` is ``t * g_t``) a product rule is a
choice of the factors' shares of ``R_y``, and relevance flows as the gradient scaled by them:
the uniform rule (AttnLRP) gives each factor half, the constant-gate rule (CP-LRP) gives the
gated input all of it. Relevance of a broadcast factor is summed over the broadcast dimensions,
so ``sum R_a + sum R_b = sum R_y`` exactly. A factor that does not depend on the input (a
parameter, a detached gate) takes nothing and the other one all of ``R_y``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lumos.lrp.ops.products import Product
from lumos.lrp.rules import Rule


def gate_index(module: Product, a: Tensor, b: Tensor) -> int | None:
    """The input that is the gate: the one preparation marked, else the broadcast one."""
    if module.gate is not None:
        return module.gate
    if a.numel() != b.numel():
        return 0 if a.numel() < b.numel() else 1
    return None


def shares(module: Product, rule: Rule, a: Tensor, b: Tensor) -> tuple[float, float]:
    """The fractions of ``R_y`` that ``a`` and ``b`` receive under ``rule``."""
    live = (a.requires_grad, b.requires_grad)
    if not all(live):   # a constant factor: the other one takes everything
        return float(live[0]), float(live[1])
    gate = gate_index(module, a, b) if rule.gate else None
    if gate is None:
        return 0.5, 0.5
    return (0.0, 1.0) if gate == 0 else (1.0, 0.0)


class _Split(torch.autograd.Function):
    """Forward ``a * b``; backward ``g_a = share_a * b * g`` (summed to ``a``'s shape), same
    for ``b``. With ``divide``: forward ``a / b`` as the model computes it (not ``a * (1 / b)``,
    which rounds twice), backward ``g_a = share_a * g / b``; ``b`` then takes no relevance."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, share_a: float, share_b: float,
                divide: bool = False) -> Tensor:
        ctx.save_for_backward(a, b)
        ctx.shares, ctx.divide = (share_a, share_b), divide
        return a / b if divide else a * b

    @staticmethod
    def backward(ctx: Any, g: Tensor
                 ) -> tuple[Tensor | None, Tensor | None, None, None, None]:
        a, b = ctx.saved_tensors
        share_a, share_b = ctx.shares
        grad_a = _share(g, b, share_a, a, ctx.divide) if ctx.needs_input_grad[0] else None
        grad_b = None if ctx.divide or not ctx.needs_input_grad[1] else \
            _share(g, a, share_b, b)
        return grad_a, grad_b, None, None, None


def _share(g: Tensor, other: Tensor, share: float, like: Tensor,
           divide: bool = False) -> Tensor | None:
    if share == 0.0:
        return None
    grad = g / other if divide else g * other
    grad = grad if share == 1.0 else grad * share
    return grad.sum_to_size(like.shape) if grad.shape != like.shape else grad


def product_step(module: Product, rule: Rule) -> Any:
    """The engine step of a :class:`Product` under a ``"product"`` rule."""
    def step(run: Any, node: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
        tensors = [a for a in args if isinstance(a, Tensor)]
        if len(tensors) != 2:   # a constant factor: the plain gradient is the rule
            return module(*args, **kwargs)
        a, b = tensors
        if module.divide:   # a / b by a value without relevance (a norm, a normaliser)
            b = b.detach()
        share_a, share_b = shares(module, rule, a, b)
        out: Tensor = _Split.apply(a, b, share_a, share_b, module.divide)
        return out
    return step



__all__ = ["gate_index", "product_step", "shares"]
