"""Parameters used outside any layer: class tokens, position embeddings, biases of attention.

A model may add a parameter to activations (``x + self.pos_embedding``), concatenate one
(``torch.cat([self.class_token.expand(n, -1, -1), x], 1)``), or add a computed table of them to
attention scores (relative position bias, ``table[index]``, folded once by the capture), or add
a number (``x + 1.0``). Preparation keeps such a value as a :class:`Constant` module (a source
with no input) and the operations on constants that depend on the batch size (``expand(n, ...)``)
as plain operations. Where a
constant meets activations (a sum, a concatenation) it takes its share of relevance like any
input: relevance that flows into it leaves the network there, a *sink*, and
:meth:`lumos.LRP.explain` reports it per constant as ``"<path> (sink)"``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, fx, nn

from lumos.lrp.capture.graph import PrepGraph, node_inputs
from lumos.lrp.capture.values import CONST, DEPENDS, VALUE


class Constant(nn.Module):
    """A tensor of the model (parameter or buffer) read outside any layer.

    Parameters
    ----------
    value : Tensor
        The tensor, held as a buffer (the model's own tensor, shared and never written).
    """

    value: Tensor

    def __init__(self, value: Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value.detach())

    def forward(self) -> Tensor:
        return self.value

    def extra_repr(self) -> str:
        return f"shape={tuple(self.value.shape)}"


def constant_nodes(g: PrepGraph) -> set[fx.Node]:
    """Nodes whose value depends on model tensors and shapes only, never on the input.

    ``get_attr`` nodes and :class:`Constant` calls, and every operation whose inputs are such
    nodes or shape computations (at least one of them a constant).
    """
    found: set[fx.Node] = set()
    for node in g.graph.nodes:
        if node.op == "get_attr" or (node.op == "call_module"
                                     and isinstance(g.modules[str(node.target)], Constant)):
            found.add(node)
        elif node.op in ("call_function", "call_method"):
            ins = list(node_inputs((node.args, node.kwargs)))
            if g.is_constant(node) or (any(n in found for n in ins) and all(
                    n in found or g.is_shape(n) for n in ins)):
                found.add(node)
    return found


def constant_node(g: PrepGraph, node: fx.Node, value: Any, like: fx.Node) -> fx.Node:
    """A call of a new :class:`Constant` holding ``value`` (a number read by ``node``), in the
    dtype and on the device of ``like``'s value, inserted before ``node``."""
    example = g.value(like)
    tensor = torch.as_tensor(value, dtype=getattr(example, "dtype", None),
                             device=getattr(example, "device", None))
    owner = g.path(node)
    base = f"{'' if owner == '<root>' else owner + '.'}lumos_{node.name}_constant"
    name = g.add_module(base, Constant(tensor), "")
    g.origin[name] = name
    with g.graph.inserting_before(node):
        new = g.graph.call_module(name, ())
    new.meta = {k: v for k, v in node.meta.items() if k not in (VALUE, DEPENDS)}
    new.meta[DEPENDS] = CONST
    return new


def materialize_constants(g: PrepGraph) -> None:
    """Turn each parameter still read outside a layer into a call of its :class:`Constant`."""
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


__all__ = ["Constant", "constant_node", "constant_nodes", "materialize_constants"]
