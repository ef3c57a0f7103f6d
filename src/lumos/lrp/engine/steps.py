"""Step functions: how one module call of a prepared model runs under its LRP rule.

A step takes the run's state, the graph node, and the call's arguments, and returns the module's
output as a tensor whose backward pass carries relevance (:mod:`lumos.lrp.engine.route`,
:mod:`lumos.lrp.engine.rulelayer`): the plain module (its gradient is the rule), Pass and Norm
through :class:`~lumos.lrp.engine.route.Route`, weighted layers through
:class:`~lumos.lrp.engine.rulelayer.RuleLayer`; products have theirs in
:mod:`lumos.lrp.ops.products`. :class:`lumos.lrp.engine.LRP` picks one step per node.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, fx, nn

from lumos.lrp.engine.route import Route
from lumos.lrp.engine.rulelayer import RuleLayer
from lumos.lrp.errors import LRPUnsupportedError
from lumos.lrp.rules import IDENTITY, EpsilonShare, Rule, safe_ratio, stabilize

# ReLU-like layers whose gradient already is act(z) / z: Pass is their plain gradient.
_HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.Identity)


@dataclass
class Run:
    """State of one forward/backward run (explain records, side relevance)."""

    explain: bool
    records: dict[fx.Node, list[Tensor]] = field(default_factory=dict)
    sides: dict[fx.Node, tuple[Tensor, list[Tensor]]] = field(default_factory=dict)
    untapped: dict[fx.Node, Tensor] = field(default_factory=dict)
    #: constants fed to layers, tracked per sample when explaining: (node, arg) -> (root, copy)
    sinks: dict[tuple[fx.Node, int], tuple[fx.Node, Tensor]] = field(default_factory=dict)


Step = Callable[[Run, fx.Node, tuple[Any, ...], dict[str, Any]], Tensor]


def plain(module: nn.Module) -> Step:
    return lambda run, node, args, kwargs: module(*args, **kwargs)


def norm(module: nn.Module, stabilizer: Any) -> Step:
    def step(run: Run, node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
        y = module(*args, **kwargs)
        value = y.detach()
        scale: Tensor | EpsilonShare
        if isinstance(stabilizer, float) and stabilizer > 0:  # y / (y + eps sign y)
            scale = EpsilonShare(value, stabilizer)
        else:
            scale = safe_ratio(value, stabilize(value, stabilizer))
        out: Tensor = Route.apply(y, value, scale)
        return out
    return step


def norm_relu(module: nn.Module, eps: float) -> Step:
    """Norm (``eps > 0``) and the ReLU after it as one step: ``y+ / (y+ + eps)``."""
    def step(run: Run, node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
        y = module(*args, **kwargs)
        value = y.detach().clamp(min=0)
        den = value + eps
        out: Tensor = Route.apply(y, value, torch.div(value, den, out=den))
        return out
    return step


def passthrough(module: nn.Module, name: str) -> Step:
    if isinstance(module, _HOMOGENEOUS):
        return plain(module)

    def step(run: Run, node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
        tensors = [a for a in args if isinstance(a, Tensor)]
        if len(tensors) != 1:
            raise LRPUnsupportedError(f"the Pass rule needs a layer with one input; '{name}' "
                                      f"({type(module).__name__}) has {len(tensors)}")
        x = tensors[0]
        with torch.no_grad():
            gate = _GATES.get(type(module))  # act(x) = x * gate(x): act(x) / x in one pass
            if gate is not None:
                scale = gate(x)
                value = x * scale
            elif isinstance(module, nn.GELU):  # the fused GELU, then GELU(x) / x (0 at x = 0)
                value = module(x)
                scale = torch.div(value, x).nan_to_num_(0.0, 0.0, 0.0)
            else:   # act(x) / x; where x is too small to divide by, nothing passes (not inf,
                # which would make 0 * inf = NaN of a branch that gets no relevance)
                value = module(*args, **kwargs)
                scale = torch.nan_to_num_(safe_ratio(value, x.detach()), 0.0, 0.0, 0.0)
        out: Tensor = Route.apply(x, value, scale)
        return out
    return step


#: The gates of self-gated activations (``act(x) = x * gate(x)``); ``act(x) / x`` is the gate
#: (a relevance of ``x = 0`` is zero whatever the scale there). GELU's gate ``Phi(x)`` costs
#: more passes than the fused ``GELU(x)`` divided by ``x``.
_GATES: dict[type, Callable[[Tensor], Tensor]] = {
    nn.SiLU: torch.sigmoid, nn.Hardswish: torch.nn.functional.hardsigmoid}


def weighted_step(layer: RuleLayer) -> Step:
    def step(run: Run, node: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tensor:
        side: list[Tensor] = []
        run.sides[node] = (run.untapped.pop(node, args[0]), side)
        return layer(args[0], side)
    return step


def is_plain_epsilon(rule: Rule) -> bool:
    return (len(rule.terms) == 1 and rule.terms[0].inputs == "x"
            and rule.terms[0].weight == IDENTITY)
