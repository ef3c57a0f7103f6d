"""Which nodes carry relevance, and the constants that take some of it (sinks).

A parameter added to activations (a class token, a position embedding, an attention bias) takes
its share of relevance like any input; that relevance leaves the network there, and
:meth:`lumos.LRP.explain` reports it per constant as ``"<path> (sink)"``. :func:`sink_args`
finds, per module call, the arguments computed from constants alone; :func:`add_sinks` feeds
them as per-sample copies that autograd tracks, so the relevance reaching them can be read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, fx, nn

from lumos.lrp.capture.graph import is_shape_read
from lumos.lrp.ops.constants import Constant


def live_nodes(nodes: list[fx.Node], cut: Callable[[fx.Node], bool]) -> set[fx.Node]:
    """The nodes (in topological order) whose value depends on the values of the model input.

    Shape computations (``x.shape[0]``) do not count; ``cut(n)`` marks nodes whose output LRP
    treats as a constant (CP-LRP's softmax).
    """
    live: set[fx.Node] = set()
    shapes: set[fx.Node] = set()
    first = True
    for n in nodes:
        ins = n.all_input_nodes
        if n.op == "placeholder":
            if first:
                live.add(n)
            first = False
        elif is_shape_read(n) or (ins and all(a in shapes for a in ins)):
            shapes.add(n)
        elif not cut(n) and any(a in live for a in ins):
            live.add(n)
    return live


def sink_args(nodes: list[fx.Node], modules: dict[str, nn.Module],
              skip: tuple[type[nn.Module], ...]) -> dict[fx.Node, list[tuple[int, fx.Node]]]:
    """Per module call: the positions of arguments computed from constants alone (by
    operations or modules), each with the :class:`Constant` it comes from (calls of ``skip``
    types take no relevance there)."""
    roots: dict[fx.Node, fx.Node] = {}   # constant-derived node -> its Constant
    found: dict[fx.Node, list[tuple[int, fx.Node]]] = {}
    live = live_nodes(nodes, lambda n: False)
    for node in nodes:
        ins = node.all_input_nodes
        if node in live:
            pass
        elif node.op == "call_module" and isinstance(modules[str(node.target)], Constant):
            roots[node] = node
        elif node.op in ("call_function", "call_method", "call_module"):
            root = next((roots[a] for a in ins if a in roots), None)
            if root is not None:   # computed from a constant (and the batch size)
                roots[node] = root
        if node.op == "call_module" and node in live and not isinstance(
                modules[str(node.target)], skip):
            spec = [(i, roots[a]) for i, a in enumerate(node.args)
                    if isinstance(a, fx.Node) and a in roots]
            if spec:
                found[node] = spec
    return found


def add_sinks(sinks: dict[tuple[fx.Node, int], tuple[fx.Node, Tensor]], node: fx.Node,
              args: tuple[Any, ...], spec: list[tuple[int, fx.Node]]) -> tuple[Any, ...]:
    """``args`` with each constant one replaced by a per-sample copy that autograd tracks.

    The copy has the batch size of the call's first activation, so the relevance that flows into
    the constant can be read per sample (as ``copy * gradient``) after the backward pass.
    """
    batch = next((a for a in args if isinstance(a, Tensor) and a.requires_grad), None)
    out = list(args)
    for i, root in spec:
        value = args[i]
        if not isinstance(value, Tensor):
            continue
        if batch is not None and value.dim() <= batch.dim():   # same broadcast, batched
            value = value.reshape((1,) * (batch.dim() - value.dim()) + tuple(value.shape))
            if value.shape[0] == 1:
                value = value.expand(batch.shape[0], *value.shape[1:])
        tracked = value.detach().requires_grad_(True)
        sinks[(node, i)] = (root, tracked)
        out[i] = tracked
    return tuple(out)


def constant_step(module: Constant) -> Any:
    """The engine step of a :class:`Constant`: its value (no relevance flows into it there)."""
    return lambda run, node, args, kwargs: module()



__all__ = ["add_sinks", "constant_step", "live_nodes", "sink_args"]
