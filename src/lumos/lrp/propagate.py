"""LRP as a modified gradient: autograd functions that carry relevance in one backward pass.

Convention: at every activation tensor ``a`` the backward pass carries ``g`` with relevance
``R = a * g``. A weighted layer's autograd function returns its normal output ``z`` and, in
backward, turns ``R_out = z * g_out`` into ``g_in`` with ``x * g_in = R_in`` by the rule's terms
(:mod:`lumos.lrp.rules`). It needs one extra forward with modified weights only for rules that
split positive and negative weights (and none at all for epsilon). Terms that do not scale with
the input (ZBox bounds, Flat and WSquare ones) cannot be written as ``x * g``: their relevance goes
to a side list that the engine adds at the model input.

Element-wise and parameter-free layers use :class:`Route`: the true value forward, a chosen
gradient scale backward (``act(z) / z`` for Pass, ``y / stabilise(y)`` for Norm).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lumos.lrp.ops import LinearOp
from lumos.lrp.rules import Rule, Term, stabilize


class Route(torch.autograd.Function):
    """Forward: ``value`` (shaped like ``source``). Backward: ``grad * scale`` to ``source``."""

    @staticmethod
    def forward(ctx: Any, source: Tensor, value: Tensor, scale: Tensor) -> Tensor:
        ctx.scale = scale
        return value.view_as(value)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return grad * ctx.scale, None, None


class Tap(torch.autograd.Function):
    """Identity that records the per-sample relevance ``sum(x * g)`` flowing into a layer."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, record: list[Tensor]) -> Tensor:
        ctx.x, ctx.record = x.detach(), record
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        ctx.record.append((ctx.x * grad).reshape(grad.shape[0], -1).sum(1))
        return grad, None


def safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den != 0``, else 0."""
    nonzero = den != 0
    return torch.where(nonzero, num, 0.0) / torch.where(nonzero, den, 1.0)


def _bound(value: float | Tensor, shape: torch.Size, like: Tensor, name: str) -> Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.dim() == len(shape) and t.shape[0] > shape[0]:
        t = t[:shape[0]]
    batch = shape[0] if t.dim() == len(shape) and t.shape[0] == shape[0] else 1
    try:
        return t.expand((batch, *shape[1:]))
    except RuntimeError:
        raise ValueError(f"ZBox {name} of shape {tuple(t.shape)} does not broadcast to the layer "
                         f"input of shape {tuple(shape)}") from None


class RuleLayer:
    """A weighted layer of the prepared model together with its LRP rule.

    Parameters
    ----------
    module : nn.Module
        Linear, ConvNd or Affine module of the prepared model.
    rule : Rule
        A rule of kind ``"linear"``.
    relevance_in : bool
        The layer produces the model output: its incoming backward value is the relevance
        itself (so an arbitrary start relevance needs no division by the output).
    """

    def __init__(self, module: torch.nn.Module, rule: Rule, relevance_in: bool = False) -> None:
        self.op = LinearOp(module)
        self.rule = rule
        self.relevance_in = relevance_in
        self._offsets: dict[Term, Tensor | None] = {}

    def __call__(self, x: Tensor, side: list[Tensor]) -> Tensor:
        out: Tensor = _RuleFunction.apply(self.op.pre(x), self, side, x.shape)
        return out

    # forward -------------------------------------------------------------------------------
    def _offset(self, term: Term) -> Tensor | None:
        """``bias_t - a * b``: turns ``a * z + c * (W+ x)`` into term ``t``'s output."""
        if term not in self._offsets:
            bias = self.op.param("bias", term.bias)
            base = self.op.bias
            assert isinstance(term.weight, tuple)
            a = term.weight[0]
            if base is None or a == 0.0:
                off = bias
            else:
                off = -a * base if bias is None else bias - a * base
            self._offsets[term] = off
        return self._offsets[term]

    def _const_input(self, term: Term, raw_shape: torch.Size, like: Tensor) -> Tensor:
        if term.inputs == "ones":
            inp = like.new_ones((1, *raw_shape[1:]))
        else:
            value = self.rule.low if term.inputs == "low" else self.rule.high
            assert value is not None
            inp = _bound(value, raw_shape, like, term.inputs)
        return self.op.pre(inp)

    def forward(self, x: Tensor, raw_shape: torch.Size) -> tuple[Tensor, dict[str, Any]]:
        """Output ``z`` and what backward needs (denominators, masks, inputs)."""
        op, rule = self.op, self.rule
        z = op.forward(x, op.weight, op.bias)
        pos_only = bool(x.min() >= 0) if any(t.inputs in ("pos", "neg") for t in rule.terms) \
            else False
        p: Tensor | None = None
        dens: list[Tensor | None] = [None] * len(rule.masks)
        inputs: dict[Term, Tensor] = {}
        for term in rule.terms:
            kind = "x" if pos_only and term.inputs == "pos" else term.inputs
            if pos_only and kind == "neg":
                continue
            if kind == "x" and isinstance(term.weight, tuple):
                a, c = term.weight
                out = z * a if a != 1.0 else z
                if c != 0.0:
                    if p is None:
                        p = op.forward(x, op.param("weight", (0.0, 1.0)), None)  # type: ignore
                    out = out + c * p
                off = self._offset(term)
                if off is not None:
                    out = out + op.bias_shape_of(off, out)
                inputs[term] = x
            else:
                inp = self._term_input(term, kind, x, raw_shape)
                weight = op.param("weight", term.weight)
                assert weight is not None
                out = op.forward(inp, weight, op.param("bias", term.bias))
                inputs[term] = inp
            out = out if term.sign == 1.0 else out * term.sign
            prev = dens[term.group]
            dens[term.group] = out if prev is None else prev + out
        inv = [None if d is None else 1.0 / stabilize(d, rule.stabilizer) for d in dens]
        masks = [None if m == "all" else (z > 0 if m == "pos" else z < 0) for m in rule.masks]
        return z, {"x": x, "z": z, "inv": inv, "masks": masks, "inputs": inputs,
                   "pos_only": pos_only}

    def _term_input(self, term: Term, kind: str, x: Tensor, raw_shape: torch.Size) -> Tensor:
        if kind == "x":
            return x
        if kind == "pos":
            return x.clamp(min=0)
        if kind == "neg":
            return x.clamp(max=0)
        return self._const_input(term, raw_shape, x)

    # backward ------------------------------------------------------------------------------
    def backward(self, saved: dict[str, Any], g: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """``g_in`` for the layer input and the side relevance of constant-input terms."""
        relevance = g if self.relevance_in else saved["z"] * g
        groups: list[Tensor | None] = []
        for inv, mask in zip(saved["inv"], saved["masks"], strict=True):
            if inv is None:
                groups.append(None)
                continue
            scaled = relevance * inv
            if mask is not None:
                scaled = scaled * mask
                if not bool(scaled.any()):
                    scaled = None
            groups.append(scaled)
        sums: dict[tuple[str, Any], tuple[Tensor, Tensor]] = {}
        for term, inp in saved["inputs"].items():
            share = groups[term.group]
            if share is None:
                continue
            share = share if term.coef == 1.0 else share * term.coef
            kind = "x" if inp is saved["x"] else term.inputs
            key = (kind, term.weight)
            sums[key] = (inp, share if key not in sums else sums[key][1] + share)
        return self._reduce(saved, sums)

    def _reduce(self, saved: dict[str, Any],
                sums: dict[tuple[str, Any], tuple[Tensor, Tensor]]) -> tuple[Tensor | None,
                                                                           Tensor | None]:
        x = saved["x"]
        grad_x: Tensor | None = None
        side: Tensor | None = None
        for (kind, mod), (inp, share) in sums.items():
            weight = self.op.param("weight", mod)
            assert weight is not None
            grad = self.op.transpose(share, weight, inp)
            if kind in ("x", "pos", "neg"):
                if kind != "x":
                    grad = grad * (x > 0 if kind == "pos" else x < 0)
                grad_x = grad if grad_x is None else grad_x + grad
            else:
                part = inp * grad
                side = part if side is None else side + part
        return grad_x, side


class _RuleFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, layer: RuleLayer, side: list[Tensor],
                raw_shape: torch.Size) -> Tensor:
        z, ctx.saved = layer.forward(x, raw_shape)
        ctx.layer, ctx.side = layer, side
        return z

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, None, None, None]:
        grad_x, side = ctx.layer.backward(ctx.saved, g)
        if side is not None:
            ctx.side.append(ctx.layer.op.unpad(side))
        ctx.saved = None
        return grad_x, None, None, None
