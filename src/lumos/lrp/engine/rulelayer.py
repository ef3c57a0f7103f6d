"""A weighted layer under its LRP rule, as an autograd function whose backward is the rule.

Convention: at every activation tensor ``a`` the backward pass carries ``g`` with relevance
``R = a * g``. :class:`RuleLayer` returns the layer's normal output ``z`` and, in backward,
turns ``R_out = z * g_out`` into ``g_in`` with ``x * g_in = R_in`` by the rule's terms
(:mod:`lumos.lrp.rules`, evaluated by :mod:`lumos.lrp.engine.terms`). It needs one extra forward
with modified weights only for rules that split positive and negative weights (none for
epsilon). Terms that do not scale with the input (ZBox bounds, Flat and WSquare ones) cannot be
written as ``x * g``: their relevance goes to a side list that the engine adds at the model
input.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lumos.lrp.engine.linear import LinearOp
from lumos.lrp.engine.signed import by_sign, zplus_backward, zplus_denominator, zplus_pair
from lumos.lrp.engine.terms import Plan, Terms, plan, weight
from lumos.lrp.rules import (
    POSITIVE,
    EpsilonShare,
    Rule,
    Term,
    apply_scale,
    safe_ratio,
    stabilize,
)


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
    nonneg_input : bool
        The input is known to be non-negative (it comes from a ReLU, say), so ``x+ = x`` and
        ``x- = 0`` without looking at the data.
    relu_after : bool
        Every user of the output is a ReLU: the relevance of outputs ``z <= 0`` is zero, so
        groups explaining negative outputs are skipped and positive-output masks are moot.
    fuse_relu : bool
        The layer's only user is a ReLU with the Pass rule, which this layer applies itself
        (output ``max(z, 0)``; saves the ReLU's own forward and backward pass).
    """

    def __init__(self, module: torch.nn.Module, rule: Rule, relevance_in: bool = False,
                 nonneg_input: bool = False, relu_after: bool = False,
                 fuse_relu: bool = False) -> None:
        self.op = LinearOp(module)
        self.rule, self.terms = rule, Terms(self.op, rule)
        self.relevance_in, self.nonneg_input, self.fuse_relu = relevance_in, nonneg_input, fuse_relu
        self.relu_after = relu_after = relu_after or fuse_relu
        self.groups = [m != "neg" or not relu_after for m in rule.masks]
        self.masks = [None if m == "all" or relu_after else m for m in rule.masks]
        self._plans: dict[bool, Plan | None] = {}
        self._signed = any(t.inputs in ("pos", "neg") for t in rule.terms)
        self._pair = zplus_pair([t for t in rule.terms if self.groups[t.group]])

    def __call__(self, x: Tensor, side: list[Tensor]) -> Tensor:
        out: Tensor = _RuleFunction.apply(self.op.pre(x), self, side, x.shape)
        return out

    # forward -------------------------------------------------------------------------------
    def forward(self, x: Tensor, raw_shape: torch.Size) -> tuple[Tensor, dict[str, Any]]:
        """Output ``z`` and what backward needs: per group ``z / stabilise(d_g)`` (masked)."""
        op, rule = self.op, self.rule
        z = op.forward(x, op.weight, op.bias)
        # z+ as the signed pair is right for inputs of any sign: no test of x needed then
        # (amin, not min, where needed: min() copies a channels-last input first)
        pos_only = self.nonneg_input or (self._signed and self._pair is None
                                         and bool(x.amin() >= 0))
        active = [t for t in rule.terms if self.groups[t.group]
                  and not (pos_only and t.inputs == "neg")]
        value = z.clamp(min=0) if self.fuse_relu else z
        if pos_only not in self._plans:
            self._plans[pos_only] = plan(self.terms, active, pos_only, self.relevance_in,
                                         self.relu_after)
        planned = self._plans[pos_only]
        if planned is not None:
            return value, _planned_forward(self, planned, x, z, value)
        p: Tensor | None = None
        dens: list[Tensor | None] = [None] * len(rule.masks)
        inputs: dict[Term, Tensor | None] = {}
        pair, stable = None if pos_only else self._pair, -1
        if pair is not None:  # z+ on a signed input: one extra pass (lumos.lrp.engine.signed)
            eps = rule.stabilizer  # folded into the pass for a plain ratio z / (d + eps)
            plain = not (self.relevance_in or self.masks[pair[0].group])
            dens[pair[0].group], folded = zplus_denominator(
                op, x, z, pair, self.terms.zplus_bias,
                0.0 if callable(eps) or not plain else eps)
            stable = pair[0].group if folded else -1
            inputs = dict.fromkeys(pair)  # backward reads x's sign, not x+ / x-
            active = []
        # terms of constant inputs first: their one-sample outputs add up before the batch's
        for term in sorted(active, key=lambda t: t.inputs not in ("ones", "low", "high")):
            kind = "x" if pos_only and term.inputs == "pos" else term.inputs
            if kind == "x" and isinstance(term.weight, tuple) and (
                    term.weight[1] == 0.0 or len(active) > 1):
                if term.weight[1] != 0.0 and p is None:
                    p = op.forward(x, weight(op, POSITIVE), op.param("bias", POSITIVE))
                out = self.terms.decomposed(term, z, p)
                inputs[term] = x
            elif kind in ("ones", "low", "high"):  # the same for every input: cached
                inputs[term], out = self.terms.constant(term, raw_shape, x)
            else:  # its own forward with modified inputs / weights
                inputs[term] = inp = _term_input(kind, x)
                out = op.forward(inp, weight(op, term.weight), op.param("bias", term.bias))
                out = out if term.sign == 1.0 else out * term.sign
            prev = dens[term.group]
            dens[term.group] = out if prev is None else prev + out
        scales = [None if d is None else torch.div(value, d, out=d) if i == stable
                  else _scale(self, d, value, mask)
                  for i, (d, mask) in enumerate(zip(dens, self.masks, strict=True))]
        return value, {"x": x, "scales": scales, "inputs": inputs,
                       "zplus": None if pair is None else pair[0].group}

    # backward ------------------------------------------------------------------------------
    def backward(self, saved: dict[str, Any], g: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """``g_in`` for the layer input and the side relevance of constant-input terms."""
        shares = [None if s is None else apply_scale(g, s) for s in saved["scales"]]
        if saved.get("zplus") is not None:  # z+ on a signed input (lumos.lrp.engine.signed)
            share = shares[saved["zplus"]]
            return None if share is None else zplus_backward(self.op, saved["x"], share), None
        sums: dict[tuple[str, Any, float], tuple[Tensor, Tensor]] = {}
        for term, inp in saved["inputs"].items():
            share = shares[term.group]
            if share is None:
                continue
            kind = "x" if inp is saved["x"] else term.inputs
            key = (kind, term.weight, term.coef)
            sums[key] = (inp, share if key not in sums else sums[key][1] + share)
        x = saved["x"]
        by_share: dict[int, list[tuple[str, Any, float, Tensor, Tensor]]] = {}
        for (kind, mod, coef), (inp, share) in sums.items():
            by_share.setdefault(id(share), []).append((kind, mod, coef, inp, share))
        parts: dict[str, Tensor] = {}
        side: Tensor | None = None
        for entries in by_share.values():
            for (kind, _, _, inp, _), grad in zip(entries, self.terms.products(entries, x),
                                                  strict=True):
                if kind in ("x", "pos", "neg"):
                    parts[kind] = grad if kind not in parts else parts[kind] + grad
                else:
                    part = inp * grad
                    side = part if side is None else side + part
        return by_sign(x, parts), side


def _planned_forward(layer: RuleLayer, planned: Plan, x: Tensor, z: Tensor, value: Tensor
                     ) -> dict[str, Any]:
    """What :meth:`RuleLayer.backward` needs, for a rule that :func:`plan` accepted: each group's
    scale from ``z`` and at most one extra pass with positive weights."""
    op, eps = layer.op, float(layer.rule.stabilizer)  # type: ignore[arg-type]
    p: Tensor | None = None
    if any(c != 0.0 for *_, c in planned.groups):
        bias = op.param("bias", POSITIVE) if planned.shift is None else \
            layer.terms.shifted_bias(planned.shift)
        p = op.forward(x, weight(op, POSITIVE), bias)
    scales: list[Tensor | None] = [None] * len(layer.rule.masks)
    inputs: dict[Term, Tensor] = {}
    for group, term, sign, a, c in planned.groups:
        # the outputs the group explains (the fused ReLU's output is already that part)
        part = z.clamp(max=0) if sign < 0 else value if layer.fuse_relu else z.clamp(min=0)
        if c == 0.0:
            den = part * a + sign * eps if a != 1.0 else part + sign * eps
        else:
            assert p is not None
            den = p * c if a == 0.0 else torch.add(part, p, alpha=c) if a == 1.0 else \
                torch.add(part * a, p, alpha=c)
            if planned.shift is None:
                den.add_(sign * eps)
        scales[group] = torch.div(part, den, out=den)  # den is a fresh tensor
        inputs[term] = x
    return {"x": x, "scales": scales, "inputs": inputs}


def _scale(layer: RuleLayer, d: Tensor, z: Tensor, mask: str | None
           ) -> Tensor | EpsilonShare | float:
    """The factor turning a group's incoming value into its share: ``z / stabilise(d)``, masked
    to the outputs the group explains (1.0 or an :class:`EpsilonShare` where that is cheaper)."""
    eps = layer.rule.stabilizer
    exact = not callable(eps) and eps == 0   # LRP-0: a zero denominator passes nothing
    plain = d is z and mask is None and not layer.relevance_in
    if plain and exact:
        return 1.0   # LRP-0 on the layer's own output is its gradient
    if plain and not callable(eps):
        return EpsilonShare(z, float(eps))  # plain epsilon: z / (z + eps sign z)
    den = d if exact else stabilize(d, eps)
    if layer.relevance_in:
        scale = safe_ratio(torch.ones_like(den), den) if exact else den.reciprocal()
        return scale if mask is None else torch.where(z > 0 if mask == "pos" else z < 0,
                                                      scale, 0.0)
    if mask is not None:  # the mask folded into the numerator: one pass
        z = z.clamp(min=0) if mask == "pos" else z.clamp(max=0)
    return (z / den).nan_to_num_(0.0) if exact else z / den


def _term_input(kind: str, x: Tensor) -> Tensor:
    """The input of a term that reads the layer input (``x``, ``pos`` or ``neg``)."""
    if kind == "pos":
        return x.clamp(min=0)
    return x.clamp(max=0) if kind == "neg" else x


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


__all__ = ["RuleLayer"]
