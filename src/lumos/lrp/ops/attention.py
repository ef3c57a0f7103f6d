"""Attention for LRP: products of two activations, softmax, and their rules (AttnLRP, CP-LRP).

Attention ``out = softmax(q kᵀ · scale + mask) v`` is prepared as modules with rules:

- :class:`MatMul` for ``q kᵀ`` and ``weights · v`` (``torch.matmul``, ``@``, ``bmm``), with the
  product rules of :mod:`lumos.lrp.products` (AttnLRP's ``Uniform``): equal shares for the
  factors that depend on the input (all of it to one factor when the other is constant);
- ``nn.Softmax`` with the rule ``Gradient`` (AttnLRP's ``R_x = x (R - s sum R)`` *is* gradient
  times input) or :func:`ConstantWeights` (CP-LRP: the attention weights are constants, so
  relevance only flows through the values);
- :class:`Scale` for multiplication by a number or a model tensor (``q * scale``, layer scale):
  linear in the activation, relevance passes unchanged.

``F.scaled_dot_product_attention`` is decomposed into these at preparation time, and every
``nn.MultiheadAttention`` of the *private* copy is replaced by :class:`AttentionOps`, which computes
the same with these operations (nothing outside the copy changes: no patching of any library).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from lumos.lrp.capture.graph import PrepGraph, node_inputs
from lumos.lrp.capture.values import VALUE
from lumos.lrp.ops.constants import Constant
from lumos.lrp.ops.layers import Reshape, Sum

Handler = Callable[[PrepGraph, fx.Node], None]


class MatMul(nn.Module):
    """Product of two activations ``a @ b`` (``b`` transposed in its last two dimensions when
    ``transpose_b``; ``torch.einsum(equation, a, b)`` when an equation is given), times
    ``scale`` (``"auto"``: ``a.size(-1) ** -0.5``, as in attention)."""

    def __init__(self, transpose_b: bool = False, scale: float | str | None = None,
                 equation: str | None = None) -> None:
        super().__init__()
        self.transpose_b, self.scale, self.equation = transpose_b, scale, equation

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if self.equation is not None:
            y = torch.einsum(self.equation, a, b)
        else:
            y = torch.matmul(a, b.transpose(-2, -1) if self.transpose_b else b)
        if self.scale is None:
            return y
        return y * (a.shape[-1] ** -0.5 if self.scale == "auto" else float(self.scale))

    def extra_repr(self) -> str:
        return f"transpose_b={self.transpose_b}, scale={self.scale}, equation={self.equation}"


class Scale(nn.Module):
    """``x * factor [* c]``: an activation times a number and, optionally, a model tensor ``c``.

    The multiplier is constant, so the map is linear in ``x`` and relevance passes unchanged (the
    gradient rule); ``c`` never takes relevance.
    """

    def __init__(self, factor: float = 1.0, reciprocal: bool = False) -> None:
        super().__init__()
        self.factor, self.reciprocal = float(factor), reciprocal

    def forward(self, x: Tensor, *c: Tensor | float) -> Tensor:
        y = x * self.factor if self.factor != 1.0 else x
        for t in c:
            t = t.detach() if isinstance(t, Tensor) else t
            y = y / t if self.reciprocal else y * t
        return y

    def extra_repr(self) -> str:
        return f"factor={self.factor}" + (", divide" if self.reciprocal else "")


class Projection(nn.Linear):
    """A query, key, value or output projection of an ``nn.MultiheadAttention`` (a Linear)."""


#: Prepared attention modules (groups for ``layer_map``).
PROJECTION: tuple[type[nn.Module], ...] = (Projection,)
MATMUL: tuple[type[nn.Module], ...] = (MatMul,)
SOFTMAX: tuple[type[nn.Module], ...] = (nn.Softmax,)
ATTENTION_LAYERS: tuple[type[nn.Module], ...] = (MatMul, Scale, nn.Softmax, Constant)


# ---- preparation: functional operations ------------------------------------------------------
def _name(node: fx.Node) -> str:
    target = node.target
    return f"Tensor.{target}" if node.op == "call_method" else getattr(target, "__name__",
                                                                       str(target))


def _insert(g: PrepGraph, node: fx.Node, module: nn.Module, args: tuple[Any, ...],
            suffix: str) -> fx.Node:
    owner = g.path(node)
    prefix = "" if owner == "<root>" else owner + "."
    target = g.new_name(f"{prefix}lumos_{node.name}_{suffix}")
    g.add_module(target, module, target)
    with g.graph.inserting_before(node):
        new = g.graph.call_module(target, args)
    new.meta = dict(node.meta)
    return new


def _matmul(g: PrepGraph, node: fx.Node) -> None:
    """``a @ b`` of two activations is a :class:`MatMul`; ``x @ W`` by a constant matrix (a
    weight of the model used functionally, SwiftFormer's ``query @ self.w_g``) is the linear
    layer ``nn.Linear`` with weight ``Wᵀ`` (a view: the model's tensor is shared)."""
    a: Any = node.args[0]
    b: Any = node.args[1]
    if not (g.is_tensor(a) and g.is_tensor(b)):
        return
    weight = g.value(b)
    if g.is_live(a) and b.op == "get_attr" and isinstance(weight, Tensor) and weight.dim() == 2:
        layer = nn.Linear(weight.shape[0], weight.shape[1], bias=False, device="meta")
        layer.weight = nn.Parameter(weight.detach().t(), requires_grad=False)
        base = str(b.target).rpartition(".")[0] or node.name
        g.replace(node, layer, (a,), name=g.new_name(base))
        return
    if _is_constant(g, a) and _is_constant(g, b):
        return   # model tensors only: computed as it is
    g.replace(node, MatMul(), (a, b))


def _einsum(g: PrepGraph, node: fx.Node) -> None:
    """``torch.einsum(equation, a, b)`` of two tensors, at least one an activation (MaxViT's
    attention; relative position terms ``einsum("bhwc,hkc->bhwk", q, table)`` of SAM and
    MViTv2). A factor computed from model tensors only takes no relevance: the product is a
    fixed linear map of the other, which takes all of it (:func:`_matmul` likewise)."""
    equation, *operands = node.args
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = list(operands[0])
    if not isinstance(equation, str) or len(operands) != 2 or not all(
            g.is_tensor(t) for t in operands) or not any(_is_live(g, t) for t in operands):
        raise g.error(node, "einsum of other than two tensors (one of them an activation)",
                      "use einsum on two tensors, or nn.Linear for weights")
    g.replace(node, MatMul(equation=equation), tuple(operands))


def _is_constant(g: PrepGraph, arg: Any) -> bool:
    """Whether ``arg`` is computed from model tensors and shapes only (not from the input)."""
    todo, seen = [arg], set()
    while todo:
        n = todo.pop()
        if not isinstance(n, fx.Node) or n in seen:
            continue
        if n.op == "placeholder":
            return False
        seen.add(n)
        todo.extend(n.all_input_nodes)
    return True


def _is_live(g: PrepGraph, arg: Any) -> bool:
    return g.is_tensor(arg) and not _is_constant(g, arg)


def _softmax(g: PrepGraph, node: fx.Node) -> None:
    """``softmax(x, dim)``; with ``dtype=`` (Hugging Face's eager attention computes it in
    float32), a cast of ``x`` first, as softmax does it."""
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    at = 3 if node.target is F.softmax else 2   # F.softmax(x, dim, _stacklevel, dtype)
    dtype = node.args[at] if len(node.args) > at else node.kwargs.get("dtype")
    if not isinstance(dim, int) or not (dtype is None or isinstance(dtype, torch.dtype)):
        raise g.error(node, f"{_name(node)} without a constant dim (or with a computed dtype)",
                      "pass dim as a number")
    x = node.args[0]
    before = g.value(x)
    if dtype is not None and isinstance(before, Tensor) and before.dtype != dtype:
        fn = partial(Tensor.to, dtype=dtype)
        x = _insert(g, node, Reshape(fn, f"to({dtype})"), (x,), "cast")
        x.meta[VALUE] = before.to(dtype)
    g.replace(node, nn.Softmax(dim), (x,))


def _sdpa(g: PrepGraph, node: fx.Node) -> None:
    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
             "enable_gqa")
    p: dict[str, Any] = dict(zip(names, node.args, strict=False))
    p.update(node.kwargs)
    if p.get("is_causal") or p.get("enable_gqa") or p.get("dropout_p", 0.0) not in (0, 0.0):
        raise g.error(node, "scaled_dot_product_attention with is_causal, enable_gqa or "
                      "dropout", "call it with dropout_p=0 in eval mode, without them")
    scale = p.get("scale")
    if isinstance(scale, fx.Node):
        raise g.error(node, "scaled_dot_product_attention with a computed scale",
                      "pass a number as scale")
    scores = _insert(g, node, MatMul(True, "auto" if scale is None else float(scale)),
                     (p["query"], p["key"]), "scores")
    mask = p.get("attn_mask")
    if mask is not None:   # an additive (float) mask; boolean ones fail in the compare step
        scores = _insert(g, node, Sum(), (scores, mask), "mask")
    weights = _insert(g, node, nn.Softmax(-1), (scores,), "softmax")
    g.replace(node, MatMul(), (weights, p["value"]))


def _roll(g: PrepGraph, node: fx.Node) -> None:
    if not g.is_tensor(node.args[0]):
        return
    if any(g.is_tensor(n) for n in node_inputs((node.args[1:], node.kwargs))):
        raise g.error(node, "roll by activations", "roll by constants")
    g.replace(node, Reshape(torch.roll, "roll"), node.args, dict(node.kwargs))


def _scale(fallback: Handler | None, divide: bool = False) -> Handler:
    """``x * c``, ``x / c`` for a tensor ``c`` computed from model tensors (a reshaped layer
    scale, ``gamma.reshape(1, -1, 1, 1)``) or a shape; other cases: ``fallback``."""
    def handle(g: PrepGraph, node: fx.Node) -> None:
        a, b = node.args[:2]
        if not divide and not _is_live(g, a) and _is_live(g, b):
            a, b = b, a
        derived = isinstance(b, fx.Node) and b.op != "get_attr"
        if _is_live(g, a) and not _is_live(g, b) and (derived or fallback is None):
            if isinstance(b, (int, float)) and not isinstance(b, bool):
                g.replace(node, Scale(1.0 / b if divide else float(b)), (a,))
            else:
                g.replace(node, Scale(1.0, reciprocal=divide), (a, b))
        elif not _is_live(g, a) and not _is_live(g, b) and (derived or fallback is None):
            return   # numbers, shapes and constants only
        elif fallback is not None:
            fallback(g, node)
        else:
            raise g.error(node, f"{_name(node)} of two activations", "divide by constants only")
    return handle


def transformer_functions(base: dict[Any, Handler]) -> dict[Any, Handler]:
    """Handlers for :mod:`lumos.lrp.canonize`'s table (``base``: its current handlers)."""
    table: dict[Any, Handler] = {}
    for fn in (operator.matmul, torch.matmul, torch.bmm, "matmul", "bmm"):
        table[fn] = _matmul
    for fn in (F.softmax, torch.softmax, "softmax"):
        table[fn] = _softmax
    table[F.scaled_dot_product_attention] = _sdpa
    table[torch.einsum] = _einsum
    for fn in (torch.roll, "roll"):
        table[fn] = _roll
    for fn in (operator.mul, operator.imul, torch.mul, "mul"):
        table[fn] = _scale(base.get(fn))
    for fn in (operator.truediv, torch.div, "div"):
        table[fn] = _scale(base.get(fn), divide=True)
    return table


__all__ = [
    "ATTENTION_LAYERS",
    "MATMUL",
    "PROJECTION",
    "SOFTMAX",
    "MatMul",
    "Projection",
    "Scale",
    "transformer_functions",
]
