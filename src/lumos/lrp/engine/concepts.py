"""Relevance at the outputs of the user's modules, read and changed during the backward pass.

The seam for concept-conditional LRP (CRP): a caller names module paths of the user's model
(``"features.28"``, a transformer block ``"encoder.layers.3"`` whose output is the residual token
stream, an MLP's activation ``"blocks.3.mlp.act"``) and gives each a :class:`RelevanceHook`.
During the backward pass the relevance at that module's output, ``R = y * g`` (``y`` the
output, ``g`` what the backward pass carries there), is handed to ``read``, then multiplied by
``mask`` (broadcast to the output: a per-row channel mask keeps the concepts of a condition) or
replaced by ``modify(R)``; the rest of the backward pass carries the changed relevance down to
the input. Relevance above the hooked layer is not changed, so one pass explains one condition
per row of the batch: to explain ``K`` conditions of ``N`` samples, repeat each sample ``K``
times (``x.repeat_interleave(K, 0)``) and give the hook a mask of ``N * K`` rows (one forward and
one backward pass for all of them). Several hooked layers each apply their own masks (a concept
path). A module called more than once (a shared layer) has the hook at every call.

Usage::

    from lumos.lrp.engine.concepts import RelevanceHook, attribute_with_hooks
    seen = {}
    hook = RelevanceHook(read=lambda r: seen.setdefault("r", r), mask=channel_mask)
    heatmap = attribute_with_hooks(lrp, x, target, {"features.28": hook})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lumos.lrp.rules import safe_ratio

if TYPE_CHECKING:
    from lumos.attribution.targets import TargetLike
    from lumos.lrp.engine.lrp import LRP


@dataclass(frozen=True)
class RelevanceHook:
    """What to do with the relevance at one module's output during the backward pass.

    Attributes
    ----------
    read : callable, optional
        Called with the relevance at the output (detached, shaped like the output).
    mask : Tensor, optional
        Multiplies the relevance (broadcast to the output's shape; e.g. ``(N, C, 1, 1)`` for a
        convolution's channels, ``(N, 1, C)`` for a token stream's features).
    modify : callable, optional
        ``R -> R'``: replaces the relevance (applied after ``mask``).
    """

    read: Callable[[Tensor], Any] | None = None
    mask: Tensor | None = None
    modify: Callable[[Tensor], Tensor] | None = None


class _Observe(torch.autograd.Function):
    """Identity forward; backward: relevance ``y * g`` to the hook, then the changed ``g``."""

    @staticmethod
    def forward(ctx: Any, y: Tensor, hook: RelevanceHook) -> Tensor:
        ctx.y, ctx.hook = y.detach(), hook
        return y.view_as(y)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:
        hook: RelevanceHook = ctx.hook
        y = ctx.y
        if hook.read is not None:
            hook.read((y * g).detach())
        if hook.mask is not None:
            g = g * hook.mask.to(g)
        if hook.modify is not None:
            changed = hook.modify((y * g).detach())
            g = safe_ratio(changed.to(g), y)
        return g, None


def observe(y: Any, hook: RelevanceHook) -> Any:
    """``y`` with ``hook`` applied to the relevance that reaches it (tensors only)."""
    if isinstance(y, Tensor) and y.requires_grad:
        return _Observe.apply(y, hook)
    return y


def attribute_with_hooks(lrp: LRP, inputs: Tensor, target: TargetLike,
                         hooks: Mapping[str, RelevanceHook],
                         relevance: Tensor | Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Input relevance of ``lrp`` with ``hooks`` at the outputs of the named modules.

    Parameters
    ----------
    lrp : LRP
        The attributor (its model and composite).
    inputs, target, relevance
        As for :meth:`lumos.LRP.attribute`.
    hooks : mapping of str to RelevanceHook
        Module path of the user's model (as in ``model.named_modules()``) to its hook.

    Raises
    ------
    ValueError
        A path names no module output of the prepared model (the message lists some that do).
    """
    return lrp._propagate(inputs, target, relevance, explain=False, hooks=hooks)[0]


def module_outputs(lrp: LRP, inputs: Tensor) -> list[str]:
    """The module paths whose outputs accept hooks, for inputs shaped like ``inputs``."""
    return sorted(lrp.program(inputs).outputs)


def channel_mask(concepts: Tensor, channels: int, dim: int, ndim: int) -> Tensor:
    """A 0/1 mask keeping, per row, the channels listed in ``concepts``.

    Parameters
    ----------
    concepts : LongTensor
        ``(rows,)`` one channel per row, or ``(rows, k)`` several.
    channels : int
        How many channels the layer's output has along ``dim``.
    dim : int
        The channel dimension of the output (1 for a convolution, -1 for a token stream).
    ndim : int
        The output's number of dimensions.

    Returns
    -------
    Tensor
        Shaped ``(rows, 1, ..., channels, ..., 1)`` to broadcast against the output.
    """
    rows = concepts.reshape(len(concepts), -1)
    mask = torch.zeros(len(rows), channels, dtype=torch.float32, device=concepts.device)
    mask.scatter_(1, rows.long(), 1.0)
    shape = [len(rows)] + [1] * (ndim - 1)
    shape[dim % ndim] = channels
    return mask.reshape(shape)


__all__ = ["RelevanceHook", "attribute_with_hooks", "channel_mask", "module_outputs",
           "observe"]
