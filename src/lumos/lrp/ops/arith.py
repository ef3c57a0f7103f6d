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
from lumos.lrp.ops.handlers import op_name
from lumos.lrp.ops.layers import Difference, Reshape, Sum
from lumos.lrp.ops.products import Product

#: Activations whose output, multiplied into another activation, makes it a gate.
GATES: tuple[type[nn.Module], ...] = (nn.Sigmoid, nn.Hardsigmoid)
#: ``x * gate(x)`` written out, and the activation module it equals.
_SELF_GATED: tuple[tuple[type[nn.Module], type[nn.Module]], ...] = (
    (nn.Sigmoid, nn.SiLU), (nn.Hardsigmoid, nn.Hardswish))


def _alpha(node: fx.Node) -> Any:
    return node.args[2] if len(node.args) > 2 else node.kwargs.get("alpha", 1)


def _two_activations(g: PrepGraph, node: fx.Node) -> bool:
    """Whether both operands carry activations; raise for activations with a constant."""
    x, y = node.args[:2]
    if g.is_tensor(x) and g.is_tensor(y):
        return True
    if g.is_tensor(x) or g.is_tensor(y):
        raise g.error(node, f"{op_name(node)} of activations and a constant (a bias outside "
                      "any layer)", "move the constant into a layer's bias, or out of the model")
    return False


def add(g: PrepGraph, node: fx.Node) -> None:
    """``x + y`` (also ``torch.add``, ``+=``) of two activations becomes :class:`Sum`."""
    if not _two_activations(g, node):
        return
    if _alpha(node) != 1:
        raise g.error(node, f"{op_name(node)} with alpha={_alpha(node)}", "use alpha=1")
    x, y = node.args[:2]
    new = g.replace(node, Sum(), (x, y))
    if node.target in (operator.iadd, "add_"):
        g.after_inplace(x, new)


def sub(g: PrepGraph, node: fx.Node) -> None:
    """``x - y`` (also ``torch.sub``, ``-=``) of two activations becomes :class:`Difference`."""
    if not _two_activations(g, node):
        return
    if _alpha(node) != 1:
        raise g.error(node, f"{op_name(node)} with alpha={_alpha(node)}", "use alpha=1")
    x, y = node.args[:2]
    new = g.replace(node, Difference(), (x, y))
    if node.target in (operator.isub, "sub_"):
        g.after_inplace(x, new)


def _producer(g: PrepGraph, arg: Any) -> nn.Module | None:
    """The module that computed ``arg``, looking through pure rearrangements."""
    while isinstance(arg, fx.Node) and arg.op == "call_module":
        module = g.modules[str(arg.target)]
        if not isinstance(module, Reshape):
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
    """``x / c`` by a number or a parameter becomes a one-input :class:`Product`."""
    x: Any = node.args[0]
    y: Any = node.args[1]
    if not g.is_tensor(x) and not g.is_tensor(y):
        return
    if not g.is_tensor(x) or (g.is_tensor(y) and _constant(y) is None):
        raise g.error(node, f"{op_name(node)} by an activation", "divide by constants only")
    factor = g.attrs[str(y.target)] if _constant(y) is not None else y
    new = g.replace(node, Product(factor=factor, divide=True), (x,))
    _inplace(g, node, x, new)


def _constant(arg: Any) -> fx.Node | None:
    """``arg`` when it is a parameter or buffer of the model (a ``get_attr`` node)."""
    return arg if isinstance(arg, fx.Node) and arg.op == "get_attr" else None


def _inplace(g: PrepGraph, node: fx.Node, x: Any, new: fx.Node) -> None:
    if node.target in (operator.imul, operator.itruediv, "mul_", "div_"):
        g.after_inplace(x, new)
