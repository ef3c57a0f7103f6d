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

from typing import Any

from torch import Tensor, fx, nn

from lumos.lrp.capture.graph import PrepGraph, node_inputs


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


__all__ = ["Constant", "constant_nodes", "materialize_constants"]
