"""The one result type that every lumos attributor can return."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class Explanation:
    """An attribution together with the numbers needed to judge it.

    Attributes
    ----------
    attribution:
        Relevance per input element, same shape as the explained input.
    output:
        The explained score ``f_t(x)`` per sample, shape ``(N,)``.
    method:
        Short name of the method that produced it (``"ig"``, ``"lrp"``, ``"gradient"``, ...).
    target:
        The explained class per sample (``(N,)`` long tensor), or ``None`` when the score came
        from a callable target.
    delta:
        Per-sample axiom gap: for IG the completeness error
        ``sum(attribution) - (f(x) - f(x'))``; for LRP ``sum(attribution) - f_t(x)``.
    baseline_output:
        ``f_t(x')`` per sample for path methods, else ``None``.
    n_steps:
        Gradient evaluations spent per sample (IG), else ``None``.
    converged:
        Per-sample bool: did the sample reach the requested tolerance (adaptive IG: both the
        estimated map error and the completeness gap).
    error:
        Per-sample estimate of the attribution map's relative L2 error
        ``|attribution - exact| / |exact|`` (adaptive IG), else ``None``.
    layers:
        Per-layer relevance sums, ``{layer name: (N,) tensor}``, in order from output to input
        (LRP's conservation report).
    """

    attribution: Tensor
    output: Tensor
    method: str
    target: Tensor | None = None
    delta: Tensor | None = None
    baseline_output: Tensor | None = None
    n_steps: Tensor | None = None
    converged: Tensor | None = None
    error: Tensor | None = None
    layers: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.attribution.shape[0])

    def _map(self, fn: Callable[[Tensor], Tensor]) -> Explanation:
        changed: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                changed[f.name] = fn(value)
            elif f.name == "layers":
                changed[f.name] = {k: fn(v) for k, v in value.items()}
        return replace(self, **changed)

    def to(self, device: torch.device | str) -> Explanation:
        """Return a copy with every tensor moved to ``device``."""
        return self._map(lambda t: t.to(device))

    def detach(self) -> Explanation:
        """Return a copy with every tensor detached from the autograd graph."""
        return self._map(Tensor.detach)
