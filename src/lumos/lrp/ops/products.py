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

from torch import Tensor, nn


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
            self.register_buffer("factor", factor.detach())
        else:
            self.factor = factor

    def forward(self, a: Tensor, b: Tensor | None = None) -> Tensor:
        if b is not None:
            return a / b if self.divide else a * b
        return a / self.factor if self.divide else a * self.factor

    def extra_repr(self) -> str:
        if self.factor is not None:
            return f"{'divide' if self.divide else 'factor'}={_short(self.factor)}"
        return f"gate={self.gate}"


def _short(value: Any) -> str:
    return f"tensor{tuple(value.shape)}" if isinstance(value, Tensor) else repr(value)


__all__ = ["Product"]
