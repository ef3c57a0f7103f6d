"""Element-wise products of activations (gates, squeeze-excitation): the module and its rules.

``y = a * b`` of two activations has no weights to modify. In the gradient-times-input view of
LRP (relevance of a tensor ``t`` is ``t * g_t``) a product rule is a choice of the two factors'
shares of ``R_y``, and relevance flows as the gradient scaled by those shares:

- :func:`Uniform` (AttnLRP, Achtibat et al. 2024): each factor gets half,
  ``R_a = R_b = R_y / 2`` (``g_a = b g_y / 2``); a factor that does not depend on the input (a
  parameter, a constant) gets nothing and the other one all of ``R_y``.
- :func:`ConstantGate` (CP-LRP, Ali et al. 2022): the gate is a constant, so the gated input
  gets all of ``R_y`` (``g_a = b g_y``) and the gate nothing. The gate is the factor that
  preparation saw come out of a sigmoid-like activation (through reshapes); when it saw none it
  is the broadcast factor (fewer elements: squeeze-excitation's pooled scale). A product with no
  gate (two full-size factors, neither a sigmoid) falls back to the uniform split.

Relevance of a broadcast factor is summed over the dimensions it was broadcast along, so both
rules conserve ``sum R_a + sum R_b = sum R_y`` exactly. A product of an activation by a constant
(``x * 0.5``, ``x / 6``, ``layer_scale * x``) is a linear map with a fixed diagonal: all
relevance stays with the activation whatever the rule.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lumos.lrp.rules import Rule


class Product(nn.Module):
    """``a * b`` of two activations, or ``a * factor`` (``a / factor``) by a constant.

    Parameters
    ----------
    gate : int or None
        Which of the two inputs (0 or 1) is a gate (produced by a sigmoid-like activation);
        ``None`` when preparation found none (the rule then looks at the shapes).
    factor : Tensor, float or None
        A constant second factor; the module then takes one input.
    divide : bool
        With ``factor``: compute ``a / factor`` (exactly as the replaced division did).
    """

    factor: Any

    def __init__(self, gate: int | None = None, factor: Tensor | float | None = None,
                 divide: bool = False) -> None:
        super().__init__()
        if gate not in (None, 0, 1):
            raise ValueError(f"gate must be 0, 1 or None, got {gate!r}")
        self.gate = gate
        self.divide = divide
        if isinstance(factor, Tensor):
            self.register_buffer("factor", factor.detach().clone())
        else:
            self.factor = factor

    def forward(self, a: Tensor, b: Tensor | None = None) -> Tensor:
        if b is not None:
            return a * b
        return a / self.factor if self.divide else a * self.factor

    def extra_repr(self) -> str:
        if self.factor is not None:
            return f"{'divide' if self.divide else 'factor'}={_short(self.factor)}"
        return f"gate={self.gate}"


def _short(value: Any) -> str:
    return f"tensor{tuple(value.shape)}" if isinstance(value, Tensor) else repr(value)


def Uniform() -> Rule:
    """Each factor of ``a * b`` gets half of the relevance (all of it if the other is constant)."""
    return Rule("Uniform", "product")


def ConstantGate() -> Rule:
    """The gate of ``a * b`` is a constant: the gated input gets all of the relevance."""
    return Rule("ConstantGate", "product", gate=True)


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
    for ``b``."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, share_a: float, share_b: float) -> Tensor:
        ctx.save_for_backward(a, b)
        ctx.shares = (share_a, share_b)
        return a * b

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        a, b = ctx.saved_tensors
        share_a, share_b = ctx.shares
        grad_a = _share(g, b, share_a, a) if ctx.needs_input_grad[0] else None
        grad_b = _share(g, a, share_b, b) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b, None, None


def _share(g: Tensor, other: Tensor, share: float, like: Tensor) -> Tensor | None:
    if share == 0.0:
        return None
    grad = g * other if share == 1.0 else g * other * share
    return grad.sum_to_size(like.shape) if grad.shape != like.shape else grad


def product_step(module: Product, rule: Rule) -> Any:
    """The engine step of a :class:`Product` under a ``"product"`` rule."""
    def step(run: Any, node: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
        tensors = [a for a in args if isinstance(a, Tensor)]
        if len(tensors) != 2:   # a constant factor: the plain gradient is the rule
            return module(*args, **kwargs)
        a, b = tensors
        share_a, share_b = shares(module, rule, a, b)
        out: Tensor = _Split.apply(a, b, share_a, share_b)
        return out
    return step


#: The product rule of the CNN composites (and of products no composite maps).
DEFAULT = ConstantGate

__all__ = ["DEFAULT", "ConstantGate", "Product", "Uniform", "gate_index", "product_step",
           "shares"]
