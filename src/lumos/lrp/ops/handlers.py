"""Graph-rewriting handlers for functional operations: each turns one traced call into a module.

A handler takes the :class:`~lumos.lrp.capture.graph.PrepGraph` and one ``call_function`` /
``call_method`` node and rewrites that node (or leaves a pure shape computation alone). The table
that maps functions to handlers is in :mod:`lumos.lrp.ops.canonize`; the handlers of operations with
their own LRP concept have modules of their own (:mod:`lumos.lrp.ops.arith`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from lumos.lrp.capture.graph import PrepGraph, node_inputs
from lumos.lrp.capture.values import DATA, DEPENDS, MUTATED, VALUE
from lumos.lrp.ops.constants import constant_node
from lumos.lrp.ops.layers import Assign, Concat, Mean, Reshape, Stack, Sum
from lumos.lrp.ops.products import Product

Handler = Callable[[PrepGraph, fx.Node], None]

ADVICE = ("rewrite it with supported layers (Linear, Conv, activations, pooling, sums, cat, "
          "reshapes, mean, BatchNorm), or move it out of the model")


def op_name(node: fx.Node) -> str:
    """A readable name of a node's operation, e.g. ``torch.nn.functional.relu``."""
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    module = getattr(target, "__module__", None) or "torch"
    return f"{module.lstrip('_')}.{getattr(target, '__name__', target)}"


def bind(g: PrepGraph, node: fx.Node, names: tuple[str, ...]) -> dict[str, Any]:
    """Constant arguments after the input, by name; raise when one is computed in the graph."""
    params = dict(zip(names, node.args[1:], strict=False))
    params.update(node.kwargs)
    if any(True for _ in node_inputs(params)):
        raise g.error(node, f"{op_name(node)} with arguments computed in the graph",
                      "pass constant arguments (numbers, tuples), or use the matching "
                      "torch.nn module in __init__")
    return params


def is_inplace(node: fx.Node, params: dict[str, Any]) -> bool:
    name = str(node.target) if node.op == "call_method" else getattr(node.target, "__name__", "")
    return bool(params.pop("inplace", False)) or name.endswith("_")


def module_op(factory: Callable[..., nn.Module | None], names: tuple[str, ...]) -> Handler:
    """A handler turning ``f(x, *constants)`` into ``factory(**constants)(x)``."""
    def handle(g: PrepGraph, node: fx.Node) -> None:
        params = bind(g, node, names)
        inplace = is_inplace(node, params)
        for key in ("stride",):   # pooling: None / [] mean "same as kernel_size"
            if key in params and not params[key]:
                del params[key]
        if params.get("return_indices"):
            raise g.error(node, f"{op_name(node)} with return_indices=True",
                          "drop return_indices; unpooling has no LRP rule")
        module = factory(**params)
        if module is None:
            raise g.error(node, f"{op_name(node)} with {params}", "use a bounded or ReLU form")
        x = node.args[0]
        new = g.replace(node, module, (x,))
        if inplace:
            g.after_inplace(x, new)
    return handle


def hardtanh(min_val: float = -1.0, max_val: float = 1.0) -> nn.Module:
    if (min_val, max_val) == (0.0, 6.0):
        return nn.ReLU6()
    return nn.Hardtanh(min_val, max_val)


def clamp(min: float | None = None, max: float | None = None) -> nn.Module | None:
    """``clamp(x, 0)`` is a ReLU, ``clamp(x, 0, 6)`` a ReLU6, ``clamp(x, a, b)`` a Hardtanh."""
    if min is None or (max is None and min != 0):
        return None
    return nn.ReLU() if max is None else hardtanh(min, max)


def dropout(g: PrepGraph, node: fx.Node) -> None:
    """Functional dropout: the identity in a traced eval-mode model (``training`` is a constant)."""
    g.bypass(node, node.args[0])


def stochastic_depth(g: PrepGraph, node: fx.Node) -> None:
    """torchvision's ``stochastic_depth(x, p, mode, training)``: the identity unless training."""
    params = bind(g, node, ("p", "mode", "training"))
    if params.get("training", True) and params.get("p", 0.0) > 0.0:
        raise g.error(node, f"{op_name(node)} with training=True", "call model.eval(), or pass "
                      "training=self.training so that eval mode skips it")
    g.bypass(node, node.args[0])


def reshape(fn: Callable[..., Any] | None) -> Handler:
    """A handler turning an element-moving op into :class:`Reshape` (``fn`` None: a method)."""
    def handle(g: PrepGraph, node: fx.Node) -> None:
        x = node.args[0]
        if not g.is_tensor(x):
            return
        extra = (node.args[1:], node.kwargs)
        if any(g.is_live(n) for n in node_inputs(extra)):
            raise g.error(node, f"{op_name(node)} indexed by activations",
                          "index with constants, shapes or values without relevance")
        if fn is getattr and node.args[1] not in ("T", "mT", "H", "mH"):
            raise g.error(node, f"reading .{node.args[1]} of an activation",
                          "use tensor operations")
        if fn is F.pad and _pad_value(node) not in (None, 0, 0.0, float("inf"),
                                                    -float("inf")):
            pad = node.args[1] if len(node.args) > 1 else node.kwargs["pad"]
            pad_with_constant(g, node, x, pad, _pad_value(node))
            return
        call = fn if fn is not None else getattr(torch.Tensor, str(node.target))
        name = op_name(node).rsplit(".", 1)[-1]
        g.replace(node, Reshape(call, name), node.args, dict(node.kwargs))
    return handle


def _part(x: torch.Tensor, *args: Any, op: str, index: int, **kwargs: Any) -> torch.Tensor:
    """Piece ``index`` of ``x.<op>(*args, **kwargs)`` (chunk, split, unbind): a selection."""
    piece: torch.Tensor = getattr(x, op)(*args, **kwargs)[index]
    return piece


def pieces(g: PrepGraph, node: fx.Node) -> None:
    """``a, b = x.chunk(2, 1)`` (ShuffleNet): each piece read becomes its own :class:`Reshape`."""
    x, extra = node.args[0], (node.args[1:], node.kwargs)
    op = str(node.target) if node.op == "call_method" else getattr(node.target, "__name__", "")
    if any(g.is_tensor(n) for n in node_inputs(extra)) or not all(
            u.target is operator.getitem and isinstance(u.args[1], int) for u in node.users):
        raise g.error(node, f"{op_name(node)} whose pieces are not read by constant index",
                      "index the pieces with constants (a, b = x.chunk(2, 1))")
    for user in list(node.users):
        index: Any = user.args[1]
        g.replace(user, Reshape(partial(_part, op=op, index=index), f"{op}[{index}]"),
                  (x, *node.args[1:]), dict(node.kwargs))
    g.graph.erase_node(node)


def pad_with_constant(g: PrepGraph, node: fx.Node, x: Any, pad: Any, value: Any) -> None:
    """``F.pad(x, pad, value=c)`` with ``c`` not zero: the zero-padded ``x`` plus a constant that
    is ``c`` on the border and zero inside, so the border's relevance flows into that constant
    (a sink) and the inside's to ``x`` (the sum rule)."""
    example = g.value(x)
    if isinstance(value, fx.Node) or isinstance(pad, fx.Node) or \
            any(isinstance(p, fx.Node) for p in pad) or len(pad) // 2 >= example.dim():
        raise g.error(node, "padding with a constant computed in the graph, or across the "
                      "batch", "pad with a number, over the dimensions after the batch")
    pad = tuple(int(p) for p in pad)
    border = F.pad(torch.zeros_like(example[:1]), pad, mode="constant", value=float(value))
    zero = g.insert(node, Reshape(partial(F.pad, pad=pad, mode="constant", value=0.0), "pad"),
                    (x,), "pad")
    g.replace(node, Sum(), (zero, constant_node(g, node, border, x)))


def assign(g: PrepGraph, node: fx.Node) -> None:
    """``x[index] = v`` into an activation: :class:`Assign` (``v`` an activation); ``v`` a number
    or constant makes ``x * keep + c``, the kept elements of ``x`` plus a constant that holds
    ``v`` at ``index`` and zero elsewhere, which takes the relevance of the overwritten elements
    (a sink). Later readers of ``x`` read the result."""
    x: Any = node.args[0]
    index: Any = node.args[1]
    v: Any = node.args[2]
    if not g.is_live(x):
        if g.is_live(v):
            raise g.error(node, "writing activations into a model tensor (x[index] = v)",
                          "build the tensor with torch.cat or out-of-place operations")
        return
    if any(g.is_tensor(n) for n in node_inputs(index)):
        raise g.error(node, "x[index] = v indexed by tensors", "index with constants")
    example = g.value(x)
    if g.is_live(v):
        new = g.replace(node, Assign(index), (x, v))
    else:
        if example.dim() == 0 or not _batch_whole(index):
            raise g.error(node, "writing a constant into part of the batch",
                          "index all samples alike (x[:, ...] = c)")
        keep = torch.ones_like(example[:1])
        keep[index] = 0.0
        full = torch.zeros_like(example[:1])
        full[index] = g.value(v) if isinstance(v, fx.Node) else v
        kept = g.insert(node, Product(factor=keep), (x,), "keep")
        new = g.replace(node, Sum(), (kept, constant_node(g, node, full, x)))
    new.meta[VALUE] = example   # x after all its writes: not compared by the self-check
    new.meta[DEPENDS], new.meta[MUTATED] = DATA, True
    g.after_inplace(x, new)


def _batch_whole(index: Any) -> bool:
    """Whether ``index`` takes every sample (its first entry ``:`` or ``...``)."""
    first = index[0] if isinstance(index, tuple) and index else index
    return first is Ellipsis or first == slice(None)


def _pad_value(node: fx.Node) -> Any:
    mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
    value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value", None)
    return value if mode == "constant" else None


def concat(g: PrepGraph, node: fx.Node) -> None:
    xs: Any = node.args[0] if node.args else node.kwargs["tensors"]
    dim: Any = node.args[1] if len(node.args) > 1 else node.kwargs.get(
        "dim", node.kwargs.get("axis", 0))
    if not isinstance(xs, (list, tuple)) or not all(g.is_tensor(x) for x in xs):
        raise g.error(node, f"{op_name(node)} of a sequence computed in the graph",
                      "concatenate an explicit list of tensors")
    g.replace(node, Concat(dim), tuple(xs))


def stack(g: PrepGraph, node: fx.Node) -> None:
    xs: Any = node.args[0] if node.args else node.kwargs["tensors"]
    dim: Any = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    if not isinstance(xs, (list, tuple)) or not all(g.is_tensor(x) for x in xs):
        raise g.error(node, f"{op_name(node)} of a sequence computed in the graph",
                      "stack an explicit list of tensors")
    g.replace(node, Stack(dim), tuple(xs))


def mean(g: PrepGraph, node: fx.Node) -> None:
    params = bind(g, node, ("dim", "keepdim"))
    if params.pop("dtype", None) is not None:
        raise g.error(node, f"{op_name(node)} with a dtype", "cast before taking the mean")
    g.replace(node, Mean(params.get("dim"), bool(params.get("keepdim", False))),
              (node.args[0],))


def functional_layer(kind: type[nn.Module], names: tuple[str, ...]) -> Handler:
    """``F.conv2d(x, self.weight, self.bias, ...)`` becomes an ``nn.Conv2d`` owning those."""
    def handle(g: PrepGraph, node: fx.Node) -> None:
        params: dict[str, Any] = dict(zip(names, node.args[1:], strict=False))
        params.update(node.kwargs)
        weight: Any = params.pop("weight")
        bias: Any = params.pop("bias", None)
        ok = all(isinstance(p, fx.Node) and p.op == "get_attr" for p in (weight, bias)
                 if p is not None)
        if not ok or any(True for _ in node_inputs(params)):
            raise g.error(node, f"{op_name(node)} with weights computed in the graph",
                          "use parameters of the model as weight and bias")
        w = g.attrs[str(weight.target)]
        b = None if bias is None else g.attrs[str(bias.target)]
        layer = _layer_like(kind, w, b, params)
        base = str(weight.target).rpartition(".")[0] or node.name
        g.replace(node, layer, (node.args[0],), name=g.new_name(base))
    return handle


def _layer_like(kind: type[nn.Module], w: torch.Tensor, b: torch.Tensor | None,
                params: dict[str, Any]) -> nn.Module:
    """An ``nn.Linear`` / ``nn.ConvNd`` built on the meta device, then given ``w`` and ``b``."""
    if kind is nn.Linear:
        layer: nn.Module = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device="meta")
    else:
        groups = int(params.get("groups", 1))
        layer = kind(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), bias=b is not None,
                     device="meta", **params)
    layer.weight = nn.Parameter(w, requires_grad=w.requires_grad)
    if b is not None:
        layer.bias = nn.Parameter(b, requires_grad=b.requires_grad)
    return layer
