"""The terms of a rule on one weighted layer: their outputs, biases and transposed products.

:class:`Terms` holds a layer's :class:`~lumos.lrp.engine.linear.LinearOp`, its rule, and the
caches that make a rule cost at most one extra forward plus one transposed product per distinct
weight: each term's output as ``a z + c p`` (``z`` the layer's output, ``p`` its output with
``W+``), its bias offset, the outputs of terms that read ones or the ZBox bounds (the same for
every input), and modified weights. :func:`plan` recognises rules whose groups have a known sign
(then the stabiliser rides in the bias of the extra forward).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lumos.lrp.engine.linear import LinearOp
from lumos.lrp.rules import IDENTITY, POSITIVE, Rule, Term


def weight(op: LinearOp, mod: Any) -> Tensor:
    """The layer's weight under a parameter modifier."""
    w = op.param("weight", mod)
    assert w is not None
    return w


def bound(value: float | Tensor, shape: torch.Size, like: Tensor, name: str) -> Tensor:
    """A ZBox bound broadcast to a layer input of ``shape`` (one row, or one per sample)."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.dim() == len(shape) and t.shape[0] > shape[0]:
        t = t[:shape[0]]
    batch = shape[0] if t.dim() == len(shape) and t.shape[0] == shape[0] else 1
    try:
        return t.expand((batch, *shape[1:]))
    except RuntimeError:
        raise ValueError(f"ZBox {name} of shape {tuple(t.shape)} does not broadcast to the layer "
                         f"input of shape {tuple(shape)}") from None


class Terms:
    """Outputs and transposed products of a rule's terms on one layer (see the module doc)."""

    def __init__(self, op: LinearOp, rule: Rule) -> None:
        self.op, self.rule = op, rule
        self._offsets: dict[Term, Tensor | None] = {}
        self._weights: dict[tuple[Any, float], Tensor] = {}
        self._shifted: dict[float, Tensor] = {}
        self._constants: dict[Term, tuple[tuple[Any, ...], Tensor, Tensor]] = {}
        #: z+ denominators' biases on signed inputs (:mod:`lumos.lrp.engine.signed`).
        self.zplus_bias: dict[tuple[object, ...], tuple[Tensor | None, bool]] = {}

    def offset(self, term: Term) -> Tensor | None:
        """``bias_t - a b - c b+``: what turns ``a z + c p`` into term ``t``'s output."""
        if term not in self._offsets:
            assert isinstance(term.weight, tuple)
            a, c = term.weight
            off = self.op.param("bias", term.bias)
            for coef, base in ((a, self.op.bias), (c, self.op.param("bias", POSITIVE))):
                if base is not None and coef != 0.0:
                    off = -coef * base if off is None else off - coef * base
            self._offsets[term] = None if off is None or not bool(off.any()) else off
        return self._offsets[term]

    def decomposed(self, term: Term, z: Tensor, p: Tensor | None) -> Tensor:
        """Term output as ``a z + c p + offset`` (for terms whose input is the layer input)."""
        assert isinstance(term.weight, tuple)
        a, c = term.weight
        if c != 0.0:
            assert p is not None
            if a == 1.0:
                out = torch.add(z, p, alpha=c)
            elif c == 1.0:
                out = torch.add(p, z, alpha=a)
            elif a + c == 1.0:  # p + a (z - p), one pass
                out = torch.lerp(p, z, a)
            else:
                out = torch.add(z * a, p, alpha=c)
        else:
            out = z if a == 1.0 else z * a
        off = self.offset(term)
        return out if off is None else out + self.op.bias_shape_of(off, out)

    def constant(self, term: Term, raw_shape: torch.Size, like: Tensor) -> tuple[Tensor, Tensor]:
        """Input and signed output of a term that reads ones or a ZBox bound, cached."""
        rule = self.rule
        value = rule.low if term.inputs == "low" else rule.high
        version = value._version if isinstance(value, Tensor) else None
        key = (tuple(raw_shape), like.dtype, like.device, version)
        hit = self._constants.get(term)
        if hit is None or hit[0] != key:  # one entry per term: the last input size
            if term.inputs == "ones":
                inp = like.new_ones((1, *raw_shape[1:]))
            else:
                assert value is not None
                inp = bound(value, raw_shape, like, term.inputs)
            inp = self.op.pre(inp)
            out = self.op.forward(inp, weight(self.op, term.weight),
                                  self.op.param("bias", term.bias))
            hit = self._constants[term] = (key, inp, out if term.sign == 1.0 else out * term.sign)
        return hit[1], hit[2]

    def shifted_bias(self, shift: float) -> Tensor:
        """``b+ + shift`` as the bias of ``p`` (puts the stabiliser into the extra forward)."""
        if shift not in self._shifted:
            bias = self.op.param("bias", POSITIVE)
            base = bias if bias is not None else self.op.weight.new_zeros(self.op.weight.shape[0])
            self._shifted[shift] = base + shift
        return self._shifted[shift]

    def products(self, entries: list[tuple[str, Any, float, Tensor, Tensor]],
                 x: Tensor) -> list[Tensor]:
        """``coef * J_mod^T share`` per entry (all with one share).

        Weights ``a W + c W+`` are linear in ``(W, W+)``: more than two of them (ZBox has
        ``W``, ``W+`` and ``W-``) cost two transposed products, not one each.
        """
        share = entries[0][4]
        mods = [mod for _, mod, _, _, _ in entries]
        if len(entries) <= 2 or not all(isinstance(mod, tuple) for mod in mods):
            weights = [self._scaled_weight(mod, coef) for _, mod, coef, _, _ in entries]
            return self.op.transpose(share, weights, x)
        plain, pos = self.op.transpose(share, [weight(self.op, IDENTITY),
                                               weight(self.op, POSITIVE)], x)
        out = []
        for (_, (a, c), coef, _, _) in entries:
            if c == 0.0:
                out.append(plain if coef * a == 1.0 else plain * (coef * a))
            elif a == 0.0:
                out.append(pos * (coef * c))
            else:
                out.append(torch.add(plain * (coef * a), pos, alpha=coef * c))
        return out

    def _scaled_weight(self, mod: Any, coef: float) -> Tensor:
        key = (mod, coef)
        if key not in self._weights:
            w = weight(self.op, mod)
            self._weights[key] = w if coef == 1.0 else w * coef
        return self._weights[key]


@dataclass(frozen=True)
class Plan:
    """Per active group its one term and output sign; the stabiliser shift of ``p``."""

    groups: tuple[tuple[int, Term, float, float, float], ...]  # group, term, sign, a, c
    shift: float | None


def plan(terms: Terms, active: list[Term], pos_only: bool, relevance_in: bool,
         relu_after: bool) -> Plan | None:
    """The terms as ``a z + c p`` per group, when each group's denominator has a known sign.

    For ``x >= 0``, ``p = W+ x + b+`` is ``>= max(z, 0)``; so with ``a, c >= 0`` a group that
    explains positive outputs has ``d > 0`` there, and with ``a > 0 >= c`` one for negative
    outputs has ``d < 0``. Such a group needs no sign test: its stabiliser is ``+-eps``, which
    folds into the bias of ``p``, and masked outputs give ``0 / (c p +- eps)``, never ``0 / 0``.
    """
    eps = terms.rule.stabilizer
    if relevance_in or callable(eps) or eps <= 0:
        return None
    found: dict[int, tuple[Term, float, float, float]] = {}
    for term in active:
        kind = "x" if pos_only and term.inputs == "pos" else term.inputs
        if (term.group in found or term.sign != 1.0 or kind != "x"
                or not isinstance(term.weight, tuple) or terms.offset(term) is not None):
            return None
        a, c = term.weight
        mask = terms.rule.masks[term.group]
        sign = 1.0 if relu_after or mask == "pos" else -1.0 if mask == "neg" else 0.0
        if c != 0.0 and not pos_only:
            return None
        if not ((sign > 0 and a >= 0 and c >= 0 and a + c > 0)
                or (sign < 0 and a > 0 and c <= 0)):
            return None
        found[term.group] = (term, sign, a, c)
    shifts = {sign * eps / c for _, sign, _, c in found.values() if c != 0.0}
    groups = tuple((group, *entry) for group, entry in found.items())
    return Plan(groups, shifts.pop() if len(shifts) == 1 else None)


__all__ = ["Plan", "Terms", "bound", "plan", "weight"]
