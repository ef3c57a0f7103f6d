"""Constant folding: what depends on parameters, buffers and constants only is computed once.

The capture knows which nodes (operations and module calls) do not depend on the input
(:data:`~lumos.lrp.capture.values.CONST`) and what each computed on the example, which is what it
computes on every input. Each such node read by a node that does depend on the input becomes a
constant: a ``get_attr`` of its value (a tensor: a qkv bias built with ``torch.cat``, a standardised
weight, a relative position bias gathered from its table, an embedding of fixed position ids) or the
Python value itself (a size, a scale). The operations that computed it are dropped. A folded tensor
is named after the first parameter or buffer it was computed from, so a constant that takes
relevance (a sink) is reported under a path the user knows.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, fx, nn

from lumos.lrp.capture.graph import PrepGraph
from lumos.lrp.capture.values import CONST, DEPENDS, VALUE

_COMPUTED = ("call_function", "call_method", "call_module")


def fold_constants(g: PrepGraph) -> int:
    """Replace every maximal input-independent computation by its value; return how many."""
    folded = 0
    for node in list(g.graph.nodes):
        if node.op not in _COMPUTED or node.meta.get(DEPENDS) != CONST or VALUE not in node.meta:
            continue
        readers = [u for u in node.users if not (u.op in _COMPUTED
                                                 and u.meta.get(DEPENDS) == CONST)]
        if not readers:
            continue   # only other constants read it: folded with them
        value = node.meta[VALUE]
        if isinstance(value, Tensor):
            _to_attr(g, node, value, readers)
        else:
            _to_value(node, value, readers)
        folded += 1
    _drop_unread(g)
    return folded


def _to_value(node: fx.Node, value: Any, readers: list[fx.Node]) -> None:
    swap = lambda n: value if n is node else n
    for user in readers:
        user.args = fx.map_arg(user.args, swap)
        user.kwargs = fx.map_arg(user.kwargs, swap)


def _to_attr(g: PrepGraph, node: fx.Node, value: Tensor, readers: list[fx.Node]) -> None:
    base = _source_name(g, node)
    name = g.new_name(base)
    g.attrs[name] = value.detach()
    g.origin[name] = base
    with g.graph.inserting_before(node):
        new = g.graph.get_attr(name)
    new.meta = {k: v for k, v in node.meta.items()}
    for user in readers:
        user.replace_input_with(node, new)


def _source_name(g: PrepGraph, node: fx.Node) -> str:
    """What a constant was computed from, as the user knows it: the nearest parameter, else the
    nearest module that computed on constants, else the nearest buffer, else
    ``<module>.constant`` (the module where it was computed)."""
    found: dict[int, str] = {}
    todo: list[Any] = [node]
    seen: set[fx.Node] = set()
    while todo:
        n = todo.pop(0)
        if not isinstance(n, fx.Node) or n in seen or n.meta.get(DEPENDS) != CONST:
            continue
        seen.add(n)
        name = str(n.target)
        if n.op == "get_attr" and not name.startswith("_tensor_constant"):
            found.setdefault(0 if isinstance(n.meta.get(VALUE), nn.Parameter) else 2, name)
        elif n.op == "call_module":
            found.setdefault(1, g.path(n))
        todo.extend(n.all_input_nodes)
    if found:
        return found[min(found)]
    owner = g.path(node)
    return "constant" if owner == "<root>" else f"{owner}.constant"


def _drop_unread(g: PrepGraph) -> None:
    """Erase computations whose value nothing reads any more (in-place writes included, once
    what they wrote is folded)."""
    for node in reversed(list(g.graph.nodes)):
        if node.op in (*_COMPUTED, "get_attr") and not node.users and \
                node.meta.get(DEPENDS) == CONST:
            g.graph.erase_node(node)


__all__ = ["fold_constants"]
