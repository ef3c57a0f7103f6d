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

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lumos.lrp.engine.linear import LinearOp
from lumos.lrp.engine.signed import by_sign, zplus_backward, zplus_denominator, zplus_pair
from lumos.lrp.rules import IDENTITY, POSITIVE, EpsilonShare, Rule, Term, apply_scale, stabilize


class Route(torch.autograd.Function):
    """Forward: ``value`` (shaped like ``source``). Backward: ``grad * scale`` to ``source``."""

    @staticmethod
    def forward(ctx: Any, source: Tensor, value: Tensor, scale: Tensor | EpsilonShare) -> Tensor:
        ctx.scale = scale
        return value.view_as(value)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return apply_scale(grad, ctx.scale), None, None


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
    nonneg_input : bool
        The input is known to be non-negative (it comes from a ReLU, say), so ``x+ = x`` and
        ``x- = 0`` without looking at the data.
    relu_after : bool
        Every user of the output is a ReLU: the relevance of outputs ``z <= 0`` is zero, so
        groups explaining negative outputs are skipped and positive-output masks are moot.
    fuse_relu : bool
        The layer's only user is a ReLU with the Pass rule, which this layer applies itself
        (output ``max(z, 0)``; saves the ReLU's own forward and backward pass).

    Notes
    -----
    With ``x >= 0`` every term with weights ``a W + c W+`` has output ``a z + c p`` with
    ``p = W+ x + b+`` (one extra forward; none if ``c = 0``), and its bias folds into that sum,
    so a rule costs at most one extra forward plus one transposed product per distinct weight.
    """

    def __init__(self, module: torch.nn.Module, rule: Rule, relevance_in: bool = False,
                 nonneg_input: bool = False, relu_after: bool = False,
                 fuse_relu: bool = False) -> None:
        self.op = LinearOp(module)
        self.rule = rule
        self.relevance_in = relevance_in
        self.nonneg_input = nonneg_input
        self.fuse_relu = fuse_relu
        relu_after = relu_after or fuse_relu
        self.groups = [m != "neg" or not relu_after for m in rule.masks]
        self.masks = [None if m == "all" or relu_after else m for m in rule.masks]
        self.relu_after = relu_after
        self._offsets: dict[Term, Tensor | None] = {}
        self._weights: dict[tuple[Any, float], Tensor] = {}
        self._plans: dict[bool, _Plan | None] = {}
        self._shifted: dict[float, Tensor] = {}
        self._constants: dict[Term, tuple[tuple[Any, ...], Tensor, Tensor]] = {}
        self._zplus_bias: dict[tuple[object, ...], tuple[Tensor | None, bool]] = {}
        self._signed = any(t.inputs in ("pos", "neg") for t in rule.terms)
        self._pair = zplus_pair([t for t in rule.terms if self.groups[t.group]])

    def __call__(self, x: Tensor, side: list[Tensor]) -> Tensor:
        out: Tensor = _RuleFunction.apply(self.op.pre(x), self, side, x.shape)
        return out

    # forward -------------------------------------------------------------------------------
    def _offset(self, term: Term) -> Tensor | None:
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

    def _const_input(self, term: Term, raw_shape: torch.Size, like: Tensor) -> Tensor:
        if term.inputs == "ones":
            inp = like.new_ones((1, *raw_shape[1:]))
        else:
            value = self.rule.low if term.inputs == "low" else self.rule.high
            assert value is not None
            inp = _bound(value, raw_shape, like, term.inputs)
        return self.op.pre(inp)

    @staticmethod
    def _term_input(kind: str, x: Tensor) -> Tensor:
        """The input of a term that reads the layer input (``x``, ``pos`` or ``neg``)."""
        if kind == "pos":
            return x.clamp(min=0)
        return x.clamp(max=0) if kind == "neg" else x

    def _constant_term(self, term: Term, raw_shape: torch.Size, like: Tensor
                       ) -> tuple[Tensor, Tensor]:
        """Input and signed output of a term that reads ones or a ZBox bound, cached."""
        bound = self.rule.low if term.inputs == "low" else self.rule.high
        version = bound._version if isinstance(bound, Tensor) else None
        key = (tuple(raw_shape), like.dtype, like.device, version)
        hit = self._constants.get(term)
        if hit is None or hit[0] != key:  # one entry per term: the last input size
            inp = self._const_input(term, raw_shape, like)
            out = self.op.forward(inp, _weight(self.op, term.weight),
                                  self.op.param("bias", term.bias))
            hit = self._constants[term] = (key, inp, out if term.sign == 1.0 else out * term.sign)
        return hit[1], hit[2]

    def _decomposed(self, term: Term, z: Tensor, p: Tensor | None, x: Tensor) -> Tensor:
        """Term output as ``a z + c p + offset`` (inputs that equal ``x``)."""
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
        off = self._offset(term)
        return out if off is None else out + self.op.bias_shape_of(off, out)

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
            self._plans[pos_only] = self._plan(active, pos_only)
        plan = self._plans[pos_only]
        if plan is not None:
            return value, self._signed_forward(plan, x, z, value)
        p: Tensor | None = None
        dens: list[Tensor | None] = [None] * len(rule.masks)
        inputs: dict[Term, Tensor | None] = {}
        pair, stable = None if pos_only else self._pair, -1
        if pair is not None:  # z+ on a signed input: one extra pass (lumos.lrp.engine.signed)
            eps = rule.stabilizer  # folded into the pass for a plain ratio z / (d + eps)
            plain = not (self.relevance_in or self.masks[pair[0].group])
            dens[pair[0].group], folded = zplus_denominator(
                op, x, z, pair, self._zplus_bias, 0.0 if callable(eps) or not plain else eps)
            stable = pair[0].group if folded else -1
            inputs = dict.fromkeys(pair)  # backward reads x's sign, not x+ / x-
            active = []
        # terms of constant inputs first: their one-sample outputs add up before the batch's
        for term in sorted(active, key=lambda t: t.inputs not in ("ones", "low", "high")):
            kind = "x" if pos_only and term.inputs == "pos" else term.inputs
            if kind == "x" and isinstance(term.weight, tuple) and (
                    term.weight[1] == 0.0 or len(active) > 1):
                if term.weight[1] != 0.0 and p is None:
                    p = op.forward(x, _weight(op, POSITIVE), op.param("bias", POSITIVE))
                out = self._decomposed(term, z, p, x)
                inputs[term] = x
            elif kind in ("ones", "low", "high"):  # the same for every input: cached
                inputs[term], out = self._constant_term(term, raw_shape, x)
            else:  # its own forward with modified inputs / weights
                inputs[term] = inp = self._term_input(kind, x)
                out = op.forward(inp, _weight(op, term.weight), op.param("bias", term.bias))
                out = out if term.sign == 1.0 else out * term.sign
            prev = dens[term.group]
            dens[term.group] = out if prev is None else prev + out
        scales = [None if d is None else torch.div(value, d, out=d) if i == stable
                  else self._scale(d, value, mask)
                  for i, (d, mask) in enumerate(zip(dens, self.masks, strict=True))]
        return value, {"x": x, "scales": scales, "inputs": inputs,
                       "zplus": None if pair is None else pair[0].group}

    def _plan(self, active: list[Term], pos_only: bool) -> _Plan | None:
        """The terms as ``a z + c p`` per group, when each group's denominator has a known sign.

        For ``x >= 0``, ``p = W+ x + b+`` is ``>= max(z, 0)``; so with ``a, c >= 0`` a group that
        explains positive outputs has ``d > 0`` there, and with ``a > 0 >= c`` one for negative
        outputs has ``d < 0``. Such a group needs no sign test: its stabiliser is ``+-eps``,
        which folds into the bias of ``p``, and masked outputs give ``0 / (c p +- eps)``, never
        ``0 / 0``.
        """
        eps = self.rule.stabilizer
        if self.relevance_in or callable(eps) or eps <= 0:
            return None
        terms: dict[int, tuple[Term, float, float, float]] = {}
        for term in active:
            kind = "x" if pos_only and term.inputs == "pos" else term.inputs
            if (term.group in terms or term.sign != 1.0 or kind != "x"
                    or not isinstance(term.weight, tuple) or self._offset(term) is not None):
                return None
            a, c = term.weight
            mask = self.rule.masks[term.group]
            sign = 1.0 if self.relu_after or mask == "pos" else -1.0 if mask == "neg" else 0.0
            if c != 0.0 and not pos_only:
                return None
            if not ((sign > 0 and a >= 0 and c >= 0 and a + c > 0)
                    or (sign < 0 and a > 0 and c <= 0)):
                return None
            terms[term.group] = (term, sign, a, c)
        shifts = {sign * eps / c for _, sign, _, c in terms.values() if c != 0.0}
        groups = tuple((group, *entry) for group, entry in terms.items())
        return _Plan(groups, shifts.pop() if len(shifts) == 1 else None)

    def _signed_forward(self, plan: _Plan, x: Tensor, z: Tensor, value: Tensor
                        ) -> dict[str, Any]:
        """What :meth:`backward` needs, for a rule that :meth:`_plan` accepted."""
        op, eps = self.op, float(self.rule.stabilizer)  # type: ignore[arg-type]
        p: Tensor | None = None
        if any(c != 0.0 for *_, c in plan.groups):
            bias = op.param("bias", POSITIVE) if plan.shift is None else self._shift(plan.shift)
            p = op.forward(x, _weight(op, POSITIVE), bias)
        scales: list[Tensor | None] = [None] * len(self.rule.masks)
        inputs: dict[Term, Tensor] = {}
        for group, term, sign, a, c in plan.groups:
            # the outputs the group explains (the fused ReLU's output is already that part)
            part = z.clamp(max=0) if sign < 0 else value if self.fuse_relu else z.clamp(min=0)
            if c == 0.0:
                den = part * a + sign * eps if a != 1.0 else part + sign * eps
            else:
                assert p is not None
                if a == 0.0:
                    den = p * c
                elif a == 1.0:
                    den = torch.add(part, p, alpha=c)
                else:
                    den = torch.add(part * a, p, alpha=c)
                if plan.shift is None:
                    den.add_(sign * eps)
            scales[group] = torch.div(part, den, out=den)  # den is a fresh tensor
            inputs[term] = x
        return {"x": x, "scales": scales, "inputs": inputs}

    def _shift(self, shift: float) -> Tensor:
        """``b+ + shift`` as the bias of ``p`` (puts the stabiliser into the extra forward)."""
        if shift not in self._shifted:
            bias = self.op.param("bias", POSITIVE)
            channels = self.op.weight.shape[0]
            base = bias if bias is not None else self.op.weight.new_zeros(channels)
            self._shifted[shift] = base + shift
        return self._shifted[shift]

    def _scale(self, d: Tensor, z: Tensor, mask: str | None) -> Tensor | EpsilonShare:
        eps = self.rule.stabilizer
        if d is z and mask is None and not self.relevance_in and not callable(eps) and eps > 0:
            return EpsilonShare(z, float(eps))  # plain epsilon: z / (z + eps sign z)
        den = stabilize(d, eps)
        if self.relevance_in:
            scale = den.reciprocal()
            return scale if mask is None else torch.where(z > 0 if mask == "pos" else z < 0,
                                                          scale, 0.0)
        if mask is not None:  # the mask folded into the numerator: one pass
            z = z.clamp(min=0) if mask == "pos" else z.clamp(max=0)
        return z / den

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
            for (kind, _, _, inp, _), grad in zip(entries, self._products(entries, x),
                                                  strict=True):
                if kind in ("x", "pos", "neg"):
                    parts[kind] = grad if kind not in parts else parts[kind] + grad
                else:
                    part = inp * grad
                    side = part if side is None else side + part
        return by_sign(x, parts), side

    def _products(self, entries: list[tuple[str, Any, float, Tensor, Tensor]],
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
        plain, pos = self.op.transpose(share, [_weight(self.op, IDENTITY),
                                               _weight(self.op, POSITIVE)], x)
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
            weight = _weight(self.op, mod)
            self._weights[key] = weight if coef == 1.0 else weight * coef
        return self._weights[key]


@dataclass(frozen=True)
class _Plan:
    """Per active group its one term and output sign; the stabiliser shift of ``p``."""

    groups: tuple[tuple[int, Term, float, float, float], ...]  # group, term, sign, a, c
    shift: float | None


def _weight(op: LinearOp, mod: Any) -> Tensor:
    weight = op.param("weight", mod)
    assert weight is not None
    return weight


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
