"""The LRP engine as concept relevance propagation needs it; the only part of :mod:`lumos.crp`
that knows the engine's internals.

CRP asks three things of the engine: run the prepared model once with the outputs of named
layers of the user's model kept (:func:`forward`), say how relevance is read at such an output
(the engine carries ``g`` with relevance ``R = a * g`` at every activation ``a``), and turn the
modified gradient that reaches the input into input relevance (plus the relevance of rule
terms that do not scale with the input, such as ZBox bounds). Masking a concept's channels and
splitting the backward pass at the concept layers is CRP's own business
(:mod:`lumos.crp.attribution`).

A layer is named by its module path in the user's model; the engine's map of module outputs
(``Program.outputs``, the same map its relevance hooks use) says which graph node holds it: the
node of a layer called as one module, the last node of a container (a transformer block's
residual sum, a residual block's final ReLU). The
engine may apply the ReLU after a layer inside the layer's own step: the relevance there is
the same (a ReLU passes it on), and the layer's activation is computed again without the ReLU
when asked for (:meth:`Pass.activation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, fx, nn

from lumos.lrp.engine import LRP
from lumos.lrp.engine.lrp import _start
from lumos.lrp.engine.program import Program
from lumos.lrp.engine.report import side_relevance
from lumos.lrp.engine.steps import Run
from lumos.lrp.rules import safe_ratio

#: Module types whose output keeps channels in dimension 1 (N, C, ...).
_CHANNELS_FIRST = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd,
                   nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
                   nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.batchnorm._BatchNorm)
#: Module types whose output keeps channels last (tokens: (N, T, D); Swin: (N, H, W, C)).
_CHANNELS_LAST = (nn.Linear, nn.LayerNorm)


class LayerError(ValueError):
    """A concept layer the prepared model does not have, or cannot be read as concepts."""


@dataclass(frozen=True)
class Layer:
    """Where a concept layer's output lives in the prepared model and how its channels lie.

    Attributes
    ----------
    name:
        The module path in the user's model.
    node:
        The prepared graph's node whose output is read.
    position:
        The node's position in the graph (higher: nearer the output).
    channel_dim:
        Dimension of the output (batch included) that indexes concepts.
    """

    name: str
    node: fx.Node
    position: int
    channel_dim: int


def program(lrp: LRP, x: Tensor) -> Program:
    """The prepared model ``lrp`` runs for inputs shaped like ``x``."""
    return lrp.program(x)


def layers(prog: Program, names: Sequence[str],
           channel_dims: dict[str, int] | None = None) -> dict[str, Layer]:
    """The concept layers ``names`` of a prepared model (:class:`LayerError` for unknown ones)."""
    position = {node: i for i, node in enumerate(prog.nodes)}
    out: dict[str, Layer] = {}
    for name in names:
        node = _output_node(prog, name, position)
        dims = (channel_dims or {}).get(name)
        out[name] = Layer(name, node, position[node],
                          _channel_dim(prog, node) if dims is None else dims)
    return out


def layer_names(prog: Program) -> list[str]:
    """Module paths of the user's model that can be concept layers, input to output: those
    whose output the prepared graph computes in one module call."""
    position = {node: i for i, node in enumerate(prog.nodes)}
    usable = [(position[nodes[0]], path) for path, nodes in prog.outputs.items()
              if path and len(nodes) == 1 and nodes[0].op == "call_module"]
    return [path for _, path in sorted(usable)]


def _output_node(prog: Program, name: str, position: dict[fx.Node, int]) -> fx.Node:
    nodes = prog.outputs.get(name, [])
    if len(nodes) > 1:
        raise LayerError(f"module '{name}' is called {len(nodes)} times in the model; name a "
                         "module that is called once (or the container around one call)")
    if not nodes:
        known = layer_names(prog)
        hint = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        raise LayerError(f"the model has no layer '{name}' that LRP runs (a module that is "
                         f"never called, one the prepared model does not keep, or a typo); "
                         f"concept layers are module paths such as: {hint}")
    node = nodes[0]
    if node.op != "call_module":
        raise LayerError(f"the output of '{name}' is computed by {node.op} "
                         f"'{node.target}', not by a layer CRP can read; name a module "
                         "inside it")
    return node


def _module(prog: Program, node: Any) -> nn.Module | None:
    if isinstance(node, fx.Node) and node.op == "call_module":
        return prog.gm.get_submodule(str(node.target))
    return None


def _fused_relu(prog: Program, node: fx.Node) -> bool:
    """Whether the engine may apply the ReLU after ``node`` inside ``node``'s own step (its
    only user is a ReLU); the module's own output is then computed again when asked for."""
    users = list(node.users)
    return len(users) == 1 and isinstance(_module(prog, users[0]), nn.ReLU)


def _channel_dim(prog: Program, node: fx.Node) -> int:
    """Channels first for convolutions and pooling, last for linear layers and LayerNorm,
    found by walking back from ``node`` through layers that keep the layout."""
    todo, seen = [node], set()
    while todo:
        current = todo.pop(0)
        if current in seen:
            continue
        seen.add(current)
        module = _module(prog, current)
        if isinstance(module, _CHANNELS_FIRST):
            return 1
        if isinstance(module, _CHANNELS_LAST):
            return -1
        todo.extend(a for a in current.all_input_nodes if a.op != "placeholder")
    return 1


@dataclass
class Pass:
    """One forward pass of the prepared model, with the concept layers' outputs kept.

    Attributes
    ----------
    output:
        The model output (the graph's, carrying relevance backwards).
    leaf:
        The input that the backward pass ends at.
    tensors:
        Output of each concept layer, by name.
    """

    prog: Program
    state: Run
    output: Tensor
    leaf: Tensor
    tensors: dict[str, Tensor]
    layers: dict[str, Layer]
    inputs: dict[str, Any]

    def activation(self, name: str) -> Tensor:
        """The output of layer ``name`` as its module computes it (detached)."""
        node = self.layers[name].node
        if _fused_relu(self.prog, node):
            with torch.no_grad():
                args, kwargs = self.inputs[name]
                return self.prog.gm.get_submodule(str(node.target))(*args, **kwargs).detach()
        return self.tensors[name].detach()

    def seed(self, start: Tensor) -> Tensor:
        """The backward pass's gradient at the output for start relevance ``start``."""
        return start if self.prog.seed_is_relevance else safe_ratio(start, self.output.detach())

    def relevance(self, name: str, grad: Tensor) -> Tensor:
        """Relevance at layer ``name`` from the gradient the backward pass carries there."""
        tensor = self.tensors[name]
        if tensor is self.output and self.prog.seed_is_relevance:
            return grad
        return tensor.detach() * grad

    def input_relevance(self, grad: Tensor | None) -> Tensor:
        """Relevance at the input from the gradient that reached it, with the relevance of
        constant-input terms (ZBox bounds, Flat) added."""
        leaf = self.leaf
        relevance = leaf.detach() * grad if grad is not None else torch.zeros_like(leaf)
        side = side_relevance(self.state.sides.values(), leaf)
        if side is not None:
            relevance = relevance + side.detach()
        self.state.sides.clear()
        if not bool(torch.isfinite(relevance).all()):
            raise ValueError("the conditional relevance is not finite (NaN or infinite): "
                             "float32 overflow or a division by a near-zero activation; "
                             "explain in float64 (model.double(), x.double()) or use a larger "
                             "epsilon")
        return relevance.detach()


def forward(lrp: LRP, x: Tensor, wanted: dict[str, Layer]) -> Pass:
    """Run the prepared model on ``x`` (grad enabled) keeping the outputs of ``wanted``
    (found again by name in the program prepared for ``x``'s size)."""
    prog = lrp.program(x)
    done = _run(prog, x, wanted)
    if len(x) not in prog.verified:  # as lumos.LRP: the graph checked once per batch size
        fresh = lrp._programs.check(prog, x, done.output)
        if fresh is not None:
            done = _run(fresh, x, wanted)
    return done


def _run(prog: Program, x: Tensor, wanted: dict[str, Layer]) -> Pass:
    names = {name: layer.channel_dim for name, layer in wanted.items()}
    here = layers(prog, list(names), names)
    state = Run(explain=False)
    by_node = {layer.node: name for name, layer in here.items()}
    kept: dict[str, Tensor] = {}
    inputs: dict[str, Any] = {}
    original = {node: prog.steps[node] for node in by_node if node in prog.steps}
    missing = [name for node, name in by_node.items() if node not in original]
    if missing:
        raise LayerError(f"layer '{missing[0]}' is not computed by a module of the prepared "
                         "model")

    def keeping(node: fx.Node) -> Any:
        step = original[node]

        def run(state: Run, n: fx.Node, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            value = step(state, n, args, kwargs)
            kept[by_node[node]] = value
            if _fused_relu(prog, node):
                inputs[by_node[node]] = (tuple(a.detach() if isinstance(a, Tensor) else a
                                               for a in args), kwargs)
            return value
        return run

    leaf = x.detach().requires_grad_(True)
    try:
        for node in original:
            prog.steps[node] = keeping(node)
        out = prog.run(leaf, state)
    finally:
        prog.steps.update(original)
    if not isinstance(out, Tensor) or out.dim() == 0 or out.shape[0] != x.shape[0]:
        raise ValueError("CRP needs a model that returns one tensor with one row per input")
    for name, value in kept.items():
        if not isinstance(value, Tensor) or (torch.is_grad_enabled() and not value.requires_grad):
            raise LayerError(f"layer '{name}' does not carry relevance (its output does not "
                             "depend on the input)")
    return Pass(prog, state, out, leaf, kept, here, inputs)


def start_relevance(out: Tensor, score: Tensor) -> Tensor:
    """``out * d score / d out``: the start relevance of a target score."""
    return _start(out, score, None)
