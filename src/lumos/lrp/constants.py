"""Parameters used outside any layer: class tokens, position embeddings, biases of attention.

A model may add a parameter to activations (``x + self.pos_embedding``), concatenate one
(``torch.cat([self.class_token.expand(n, -1, -1), x], 1)``), or add a computed table of them to
attention scores (relative position bias, ``table[index]``). Preparation keeps such a parameter as
a :class:`Constant` module (a source with no input) and the operations computed from constants
alone (``expand``, ``repeat``, indexing by a buffer, reshapes) as plain operations. Where a
constant meets activations (a sum, a concatenation) it takes its share of relevance like any
input: relevance that flows into it leaves the network there, a *sink*, and
:meth:`lumos.LRP.explain` reports it per constant as ``"<path> (sink)"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, fx, nn

from lumos.lrp.prepgraph import PrepGraph, node_inputs
from lumos.lrp.prepgraph import _is_shape_read as is_shape_read


class Constant(nn.Module):
    """A tensor of the model (parameter or buffer) read outside any layer.

    Parameters
    ----------
    value : Tensor
        The tensor; stored as a buffer owned by this module (a copy).
    """

    value: Tensor

    def __init__(self, value: Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value.detach().clone())

    def forward(self) -> Tensor:
        return self.value

    def extra_repr(self) -> str:
        return f"shape={tuple(self.value.shape)}"


def constant_nodes(g: PrepGraph) -> set[fx.Node]:
    """Nodes whose value depends on model tensors and shapes only, never on the input.

    ``get_attr`` nodes and :class:`Constant` calls, and every operation whose inputs are such
    nodes or shape computations (at least one of them a constant).
    """
    g.mark_shapes()
    found: set[fx.Node] = set()
    for node in g.graph.nodes:
        if node.op == "get_attr" or (node.op == "call_module"
                                     and isinstance(g.modules[str(node.target)], Constant)):
            found.add(node)
        elif node.op in ("call_function", "call_method"):
            ins = list(node_inputs((node.args, node.kwargs)))
            if any(n in found for n in ins) and all(n in found or g.is_shape(n) for n in ins):
                found.add(node)
    return found


def materialize_constants(g: PrepGraph) -> None:
    """Turn each parameter still read outside a layer into a call of its :class:`Constant`."""
    g.mark_shapes()
    for node in list(g.graph.nodes):
        if node.op != "get_attr" or all(g.is_shape(u) for u in node.users):
            continue
        value: Any = g.attrs[str(node.target)]
        if not isinstance(value, Tensor):
            continue
        target = str(node.target)
        name = g.new_name(f"{target}_constant")
        g.modules[name] = Constant(value)
        g.origin[name] = target
        with g.graph.inserting_after(node):
            new = g.graph.call_module(name, ())
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        g.graph.erase_node(node)


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
    """Per module call: the positions of arguments computed from constants alone, each with
    the :class:`Constant` it comes from (calls of ``skip`` types take no relevance there)."""
    roots: dict[fx.Node, fx.Node] = {}   # constant-derived node -> its Constant
    found: dict[fx.Node, list[tuple[int, fx.Node]]] = {}
    live = live_nodes(nodes, lambda n: False)
    for node in nodes:
        ins = node.all_input_nodes
        if node in live:
            pass
        elif node.op == "call_module" and isinstance(modules[str(node.target)], Constant):
            roots[node] = node
        elif node.op in ("call_function", "call_method"):
            root = next((roots[a] for a in ins if a in roots), None)
            if root is not None:
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


__all__ = ["Constant", "add_sinks", "constant_nodes", "constant_step", "live_nodes",
           "materialize_constants", "sink_args"]
