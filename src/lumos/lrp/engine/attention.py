"""Engine steps of attention layers: products of two activations (AttnLRP's uniform rule,
CP-LRP's constant weights), layers whose output is a constant under the rule, normalisations and
constants; :func:`transformer_step` picks one for a layer, or None for the engine's default."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, fx, nn

from lumos.lrp.engine.norms import norm_step
from lumos.lrp.engine.route import Route
from lumos.lrp.engine.sinks import constant_step
from lumos.lrp.errors import LRPUnsupportedError
from lumos.lrp.ops.attention import MatMul
from lumos.lrp.ops.constants import Constant
from lumos.lrp.ops.norms import Normalization
from lumos.lrp.rules import Rule


def uniform_step(module: nn.Module, live: list[bool]) -> Any:
    """The engine step of a :class:`MatMul` under a product rule: equal shares of the relevance
    for the factors that depend on the input (``live``), ``R_a = a ⊙ ((R_y / (k y)) bᵀ)``.

    For ``k = 2`` this is AttnLRP's uniform rule; under CP-LRP the attention weights are
    constants (``k = 1``) and the values take all of it.
    """
    share = 1.0 / max(1, sum(live))

    def step(run: Any, node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
        if not all(live):   # a factor without relevance (CP-LRP's attention weights mixed
            flags = iter(live)   # with a parameter, a position table) passes none back
            args = tuple(a.detach() if isinstance(a, Tensor) and not next(flags, True) else a
                         for a in args)
        y = module(*args, **kwargs)
        if share == 1.0:
            return y
        out: Tensor = Route.apply(y, y.detach(), share)
        return out
    return step


def constant_output_step(module: nn.Module) -> Any:
    """The engine step of a layer whose output LRP treats as a constant (CP-LRP softmax)."""
    def step(run: Any, node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
        with torch.no_grad():
            out: Tensor = module(*args, **kwargs)
        return out
    return step



def transformer_step(module: nn.Module, rule: Rule, live: Callable[[], list[bool]]) -> Any:
    """The engine step for a transformer layer under ``rule``, or None (the engine's own).

    Raises
    ------
    LRPUnsupportedError
        A transformer rule on a layer it does not apply to.
    """
    if isinstance(module, Constant):
        return constant_step(module)
    if isinstance(module, Normalization):
        return norm_step(module, rule)
    if isinstance(module, MatMul) and rule.kind == "product":
        return uniform_step(module, live())
    if rule.kind == "constant":
        return constant_output_step(module)
    if rule.kind == "std-constant":
        raise LRPUnsupportedError(f"rule {rule.name} applies to normalisation layers, not to "
                                  f"{type(module).__name__}")
    return None



__all__ = ["constant_output_step", "transformer_step", "uniform_step"]
