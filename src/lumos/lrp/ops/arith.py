"""Arithmetic between activations: sums, differences, products and divisions by constants.

``x + y`` becomes :class:`~lumos.lrp.ops.layers.Sum`, ``x - y``
:class:`~lumos.lrp.ops.layers.Difference`(a sum with a negated input), ``a * b`` of two activations
a :class:`~lumos.lrp.ops.products.Product` that knows which factor is a gate, and ``x * c``, ``x /
c`` by a constant (a number or a parameter of the model) a one-input ``Product``. ``x * sigmoid(x)``
and ``x * hardsigmoid(x)`` written out become ``nn.SiLU`` and ``nn.Hardswish``.
"""

from __future__ import annotations

import operator
from typing import Any

from torch import fx, nn

from lumos.lrp.capture.graph import PrepGraph
from lumos.lrp.capture.values import VALUE
from lumos.lrp.ops.constants import constant_node
from lumos.lrp.ops.elementwise import Detached, detach_node
from lumos.lrp.ops.handlers import op_name
from lumos.lrp.ops.layers import Difference, Resample, Reshape, Sum
from lumos.lrp.ops.products import Product

#: Activations whose output, multiplied into another activation, makes it a gate.
GATES: tuple[type[nn.Module], ...] = (nn.Sigmoid, nn.Hardsigmoid)
#: ``x * gate(x)`` written out, and the activation module it equals.
_SELF_GATED: tuple[tuple[type[nn.Module], type[nn.Module]], ...] = (
    (nn.Sigmoid, nn.SiLU), (nn.Hardsigmoid, nn.Hardswish))


def _alpha(node: fx.Node) -> Any:
    return node.args[2] if len(node.args) > 2 else node.kwargs.get("alpha", 1)


def _operands(g: PrepGraph, node: fx.Node) -> tuple[Any, Any] | None:
    """The two operands of ``x + y`` / ``x - y`` when one of them carries relevance: a number
    (not zero) becomes a :class:`~lumos.lrp.ops.constants.Constant` (a sink); None when neither
    carries relevance."""
    x, y = node.args[:2]
    if not (g.is_live(x) or g.is_live(y)):
        return None
    if _alpha(node) != 1:
        raise g.error(node, f"{op_name(node)} with alpha={_alpha(node)}", "use alpha=1")
    live: Any = x if g.is_live(x) else y
    x, y = (constant_node(g, node, a, live) if not isinstance(a, fx.Node) else a
            for a in (x, y))
    return x, y


def add(g: PrepGraph, node: fx.Node) -> None:
    """``x + y`` (also ``torch.add``, ``+=``) with an activation becomes :class:`Sum`; an added
    constant (a number, a parameter) is an input of the sum that takes relevance: a sink."""
    if _zero_operand(g, node):
        return
    operands, first = _operands(g, node), node.args[0]
    if operands is None:
        return
    new = g.replace(node, Sum(), operands)
    if node.target in (operator.iadd, "add_"):
        g.after_inplace(first, new)


def sub(g: PrepGraph, node: fx.Node) -> None:
    """``x - y`` (also ``torch.sub``, ``-=``) with an activation becomes :class:`Difference`."""
    if _zero_operand(g, node, second_only=True):
        return
    operands, first = _operands(g, node), node.args[0]
    if operands is None:
        return
    new = g.replace(node, Difference(), operands)
    if node.target in (operator.isub, "sub_"):
        g.after_inplace(first, new)


def _zero_operand(g: PrepGraph, node: fx.Node, second_only: bool = False) -> bool:
    """``x + 0`` / ``0 + x`` / ``x - 0``: the activation itself (a sum started at zero)."""
    x, y = node.args[:2]
    for zero, other in ((y, x),) if second_only else ((y, x), (x, y)):
        if isinstance(zero, (int, float)) and not isinstance(zero, bool) and zero == 0 \
                and g.is_live(other):
            g.bypass(node, other)
            return True
    return False


def _producer(g: PrepGraph, arg: Any) -> nn.Module | None:
    """The module that computed ``arg``, looking through rearrangements and resampling (a gate
    resized to the gated map, as in GhostNetV2's ``x * interpolate(sigmoid(s))``)."""
    while isinstance(arg, fx.Node) and arg.op == "call_module":
        module = g.modules[str(arg.target)]
        if not isinstance(module, (Reshape, Resample)):
            return module
        arg = arg.args[0]
    return None


def _gate_of(g: PrepGraph, x: Any, y: Any) -> int | None:
    """0 or 1 when exactly that factor comes out of a sigmoid-like gate, else None."""
    gated = [isinstance(_producer(g, a), GATES) for a in (x, y)]
    return gated.index(True) if gated.count(True) == 1 else None


def _self_gated(g: PrepGraph, node: fx.Node) -> bool:
    """``x * sigmoid(x)`` -> ``SiLU(x)``, ``x * hardsigmoid(x)`` -> ``Hardswish(x)``."""
    x, y = node.args[:2]
    for a, s in ((x, y), (y, x)):
        if not (isinstance(s, fx.Node) and s.op == "call_module" and s.args[0] is a):
            continue
        gate = g.modules[str(s.target)]
        for kind, act in _SELF_GATED:
            if type(gate) is kind:
                g.replace(node, act(), (a,))
                if not s.users:
                    g.graph.erase_node(s)
                return True
    return False


def mul(g: PrepGraph, node: fx.Node) -> None:
    """``a * b``: a gated :class:`Product`, a product by a constant, or a fused activation."""
    x: Any = node.args[0]
    y: Any = node.args[1]
    if not g.is_tensor(x) and not g.is_tensor(y):
        return
    if g.is_tensor(x) and g.is_tensor(y) and _constant(x) is None and _constant(y) is None:
        if not _self_gated(g, node):
            new = g.replace(node, Product(gate=_gate_of(g, x, y)), (x, y))
            _inplace(g, node, x, new)
        return
    if not g.is_tensor(x) or _constant(x) is not None:
        x, y = y, x   # the activation first
    factor = g.attrs[str(y.target)] if _constant(y) is not None else y
    new = g.replace(node, Product(factor=factor), (x,))
    _inplace(g, node, x, new)


def div(g: PrepGraph, node: fx.Node) -> None:
    """``x / c`` by a number, a parameter or a value without relevance (a norm): a
    :class:`Product` that gives the activation all of the relevance. ``x / y`` by an activation
    ``y`` divides by a normaliser (linear attention's ``q k^T v / q k^T 1``): ``y`` is treated as
    a constant, as softmax's denominator and LayerNorm's ``std`` are in CP-LRP and AttnLRP, so
    ``x`` takes all of the relevance. ``c / y`` of an activation (a reciprocal) carries none."""
    x: Any = node.args[0]
    y: Any = node.args[1]
    if not g.is_live(x) and not g.is_live(y):
        return
    if not g.is_live(x):
        detach_node(g, node)
        return
    if g.is_live(y):
        y = _normaliser(g, node, y)
    if _constant(y) is not None:
        new = g.replace(node, Product(factor=g.attrs[str(y.target)], divide=True), (x,))
    elif isinstance(y, fx.Node):
        new = g.replace(node, Product(divide=True), (x, y))
    else:
        new = g.replace(node, Product(factor=y, divide=True), (x,))
    _inplace(g, node, x, new)


def neg(g: PrepGraph, node: fx.Node) -> None:
    """``-x`` (rotary embeddings' ``cat([-x2, x1])``): a product by the constant -1, whose
    relevance stays with ``x`` (``R_x = R_y``)."""
    x: Any = node.args[0]
    if g.is_live(x):
        g.replace(node, Product(factor=-1.0), (x,))


def _identity(t: Any) -> Any:
    return t


def _normaliser(g: PrepGraph, node: fx.Node, y: fx.Node) -> fx.Node:
    """``y`` through a :class:`Detached` identity: a denominator that takes no relevance."""
    new = g.insert(node, Detached(_identity, "normaliser"), (y,), "normaliser")
    new.meta[VALUE] = g.value(y)
    g.detached.add(new)
    return new


def _constant(arg: Any) -> fx.Node | None:
    """``arg`` when it is a parameter or buffer of the model (a ``get_attr`` node)."""
    return arg if isinstance(arg, fx.Node) and arg.op == "get_attr" else None


def _inplace(g: PrepGraph, node: fx.Node, x: Any, new: fx.Node) -> None:
    if node.target in (operator.imul, operator.itruediv, "mul_", "div_"):
        g.after_inplace(x, new)
