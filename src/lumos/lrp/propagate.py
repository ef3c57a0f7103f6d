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
from lumos.lrp.rules import POSITIVE, Rule, Term, stabilize


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
        self._offsets: dict[Term, Tensor | None] = {}
        self._weights: dict[tuple[Any, float], Tensor] = {}

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

    def _term_input(self, term: Term, kind: str, x: Tensor, raw_shape: torch.Size) -> Tensor:
        if kind == "x":
            return x
        if kind == "pos":
            return x.clamp(min=0)
        if kind == "neg":
            return x.clamp(max=0)
        return self._const_input(term, raw_shape, x)

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
        signed = any(t.inputs in ("pos", "neg") for t in rule.terms)
        pos_only = self.nonneg_input or (signed and bool(x.min() >= 0))
        active = [t for t in rule.terms if self.groups[t.group]
                  and not (pos_only and t.inputs == "neg")]
        p: Tensor | None = None
        dens: list[Tensor | None] = [None] * len(rule.masks)
        inputs: dict[Term, Tensor] = {}
        for term in active:
            kind = "x" if pos_only and term.inputs == "pos" else term.inputs
            if kind == "x" and isinstance(term.weight, tuple) and (
                    term.weight[1] == 0.0 or len(active) > 1):
                if term.weight[1] != 0.0 and p is None:
                    p = op.forward(x, _weight(op, POSITIVE), op.param("bias", POSITIVE))
                out = self._decomposed(term, z, p, x)
                inputs[term] = x
            else:  # its own forward with modified inputs / weights
                inputs[term] = inp = self._term_input(term, kind, x, raw_shape)
                out = op.forward(inp, _weight(op, term.weight), op.param("bias", term.bias))
            out = out if term.sign == 1.0 else out * term.sign
            prev = dens[term.group]
            dens[term.group] = out if prev is None else prev + out
        value = z.clamp(min=0) if self.fuse_relu else z
        scales = [None if d is None else self._scale(d, value, mask)
                  for d, mask in zip(dens, self.masks, strict=True)]
        return value, {"x": x, "scales": scales, "inputs": inputs}

    def _scale(self, d: Tensor, z: Tensor, mask: str | None) -> Tensor:
        den = stabilize(d, self.rule.stabilizer)
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
        shares = [None if s is None else g * s for s in saved["scales"]]
        sums: dict[tuple[str, Any, float], tuple[Tensor, Tensor]] = {}
        for term, inp in saved["inputs"].items():
            share = shares[term.group]
            if share is None:
                continue
            kind = "x" if inp is saved["x"] else term.inputs
            key = (kind, term.weight, term.coef)
            sums[key] = (inp, share if key not in sums else sums[key][1] + share)
        x = saved["x"]
        grad_x: Tensor | None = None
        side: Tensor | None = None
        for (kind, mod, coef), (inp, share) in sums.items():
            grad = self.op.transpose(share, self._scaled_weight(mod, coef), inp)
            if kind in ("x", "pos", "neg"):
                if kind != "x":
                    grad = grad * (x > 0 if kind == "pos" else x < 0)
                grad_x = grad if grad_x is None else grad_x + grad
            else:
                part = inp * grad
                side = part if side is None else side + part
        return grad_x, side

    def _scaled_weight(self, mod: Any, coef: float) -> Tensor:
        key = (mod, coef)
        if key not in self._weights:
            weight = _weight(self.op, mod)
            self._weights[key] = weight if coef == 1.0 else weight * coef
        return self._weights[key]


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
