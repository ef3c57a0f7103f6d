"""The working state of model preparation: a captured graph, the modules it calls, provenance.

The op vocabulary's handlers (:mod:`lumos.lrp.ops.canonize`) and the folding passes rewrite the
graph through the small API of :class:`PrepGraph` (replace a node by a module call, drop a node,
name a new module, raise an error that names the source), so that each pass stays a few lines
about its own concern. Every captured node carries the example's value and what it depends on
(:mod:`lumos.lrp.capture.values`), which classifies it: an *activation* (computed from the
input's data, carries relevance), a *constant tensor* (from parameters, constants or the input's
shape alone), a *shape* (a Python value: a size, a dtype), or *detached* (computed from the
input's data only through operations whose output carries no relevance: a norm used to
normalise, a comparison, an index).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, fx, nn

from lumos.lrp.capture.values import (
    CONST,
    DATA,
    DEPENDS,
    OUTPUTS,
    SOURCE,
    VALUE,
    format_line,
)
from lumos.lrp.errors import LRPUnsupportedError

#: Tensor methods that read a tensor's metadata (the batch size), never its values.
SHAPE_METHODS = frozenset({"size", "dim", "numel", "nelement", "ndimension"})
SHAPE_ATTRS = frozenset({"shape", "ndim", "dtype", "device", "is_cuda"})


def node_inputs(arg: Any) -> Iterator[fx.Node]:
    """Every graph node inside ``arg`` (nested tuples, lists, dicts and slices included)."""
    if isinstance(arg, fx.Node):
        yield arg
    elif isinstance(arg, (tuple, list)):
        for a in arg:
            yield from node_inputs(a)
    elif isinstance(arg, dict):
        for a in arg.values():
            yield from node_inputs(a)
    elif isinstance(arg, slice):
        yield from node_inputs((arg.start, arg.stop, arg.step))


def is_shape_read(node: fx.Node) -> bool:
    """A node that reads a tensor's size (the batch size kept symbolic by the capture)."""
    if node.op == "call_method":
        return node.target in SHAPE_METHODS
    return (node.op == "call_function" and node.target is getattr
            and len(node.args) > 1 and node.args[1] in SHAPE_ATTRS)


def _holds_tensor(value: Any) -> bool:
    """A tensor, or a tuple / list holding one (the pieces of ``split``)."""
    if isinstance(value, Tensor):
        return True
    return isinstance(value, (tuple, list)) and any(_holds_tensor(v) for v in value)


class NodeKinds:
    """What a captured node is (see the module docstring): the classification half of
    :class:`PrepGraph`, read by the op vocabulary's handlers and the rule assignment.

    Attributes
    ----------
    detached : set of fx.Node
        Nodes computed from the input's data only through operations without relevance.
    """

    detached: set[fx.Node]

    def is_shape(self, node: Any) -> bool:
        """True for a Python value or a node whose value is not a tensor (sizes, dtypes)."""
        if not isinstance(node, fx.Node):
            return True
        if VALUE in node.meta:
            return not _holds_tensor(node.meta[VALUE])
        return is_shape_read(node)

    def is_tensor(self, arg: Any) -> bool:
        """True for a node whose value is a tensor (activations, parameters, constants)."""
        return isinstance(arg, fx.Node) and not self.is_shape(arg)

    def is_live(self, arg: Any) -> bool:
        """True for a tensor computed from the input's data that carries relevance."""
        if not self.is_tensor(arg) or arg in self.detached:
            return False
        return arg.meta.get(DEPENDS, DATA) == DATA

    def is_constant(self, arg: Any) -> bool:
        """True for a tensor that does not depend on the input's data (parameters, constants,
        tensors made from the input's shape)."""
        return self.is_tensor(arg) and arg.meta.get(DEPENDS, DATA) != DATA

    def value(self, node: Any) -> Any:
        """The example's value of a node (Python values as they are; None when unknown)."""
        if isinstance(node, fx.Node):
            return node.meta.get(VALUE)
        return node


@dataclass
class PrepGraph(NodeKinds):
    """A captured model while preparation rewrites it.

    Attributes
    ----------
    graph : torch.fx.Graph
        The graph being rewritten in place.
    modules : dict[str, nn.Module]
        Every module a ``call_module`` node may target, by qualified name.
    attrs : dict[str, Any]
        Values of ``get_attr`` nodes (parameters, buffers and folded constants).
    origin : dict[str, str]
        Prepared module (or constant) name → path of the user's module (or tensor) it stands for.
    detached : set of fx.Node
        Nodes computed from the input's data only through operations without relevance
        (kept as plain operations; nothing flows back into them).
    """

    graph: fx.Graph
    modules: dict[str, nn.Module]
    attrs: dict[str, Any]
    origin: dict[str, str] = field(default_factory=dict)
    detached: set[fx.Node] = field(default_factory=set)

    # ---- provenance and errors --------------------------------------------------------------
    def path(self, node: fx.Node) -> str:
        """The user's module path where ``node`` was written (``'<root>'`` for the model's own)."""
        if node.op == "call_module":
            return self.origin.get(str(node.target), str(node.target))
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return "<root>"
        return str(list(stack.values())[-1][0]) or "<root>"

    def error(self, node: fx.Node, what: str, todo: str) -> LRPUnsupportedError:
        """An error naming the operation, its module path, its source line and what to do."""
        where = (f"at '{self.path(node)}'" if node.op == "call_module"
                 else f"in module '{self.path(node)}'")
        line = format_line(node.meta.get(SOURCE))
        if line:
            where += f" ({line})"
        return LRPUnsupportedError(f"{what} {where} has no LRP rule: {todo}")

    # ---- rewriting ---------------------------------------------------------------------------
    def new_name(self, base: str) -> str:
        """A module name not used yet, ``base`` itself when free."""
        name, k = base, 0
        while name in self.modules or name in self.attrs:
            k += 1
            name = f"{base}_{k}"
        return name

    def add_module(self, base: str, module: nn.Module, origin: str) -> str:
        """Register ``module`` under a fresh name derived from ``base``; return that name."""
        name = self.new_name(base)
        self.modules[name] = module
        self.origin[name] = origin
        return name

    def replace(self, node: fx.Node, module: nn.Module, args: tuple[Any, ...],
                kwargs: dict[str, Any] | None = None, name: str | None = None) -> fx.Node:
        """Replace ``node`` by a call of ``module`` (a new module) on ``args``.

        ``name`` None: a functional op; the module is named ``<owner path>.lumos_<node name>``
        and, having no module of the user behind it, is its own origin (a unique name). Otherwise
        the module stands for the user's module at ``self.path(node)``. The new node computes
        what ``node`` computed and keeps its meta (value, source line).
        """
        target = self._target(node, module, name)
        with self.graph.inserting_after(node):
            new = self.graph.call_module(target, args, kwargs or {})
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        self.graph.erase_node(node)
        return new

    def insert(self, node: fx.Node, module: nn.Module, args: tuple[Any, ...],
               suffix: str) -> fx.Node:
        """A new call of ``module`` before ``node`` (an intermediate step of what ``node``
        computes: same module path and source line, no example value)."""
        target = self._own(node, module, f"_{suffix}")
        with self.graph.inserting_before(node):
            new = self.graph.call_module(target, args)
        new.meta = {k: v for k, v in node.meta.items() if k != VALUE}
        return new

    def call(self, fn: Any, args: tuple[Any, ...], like: fx.Node) -> fx.Node:
        """A new ``fn(*args)`` node before ``like`` (part of what ``like`` computes), with its
        example value and dependence computed from its arguments'."""
        with self.graph.inserting_before(like):
            new = self.graph.call_function(fn, args)
        new.meta = {k: v for k, v in like.meta.items() if k not in (VALUE, DEPENDS)}
        inputs = list(node_inputs(args))
        if all(VALUE in n.meta for n in inputs):
            new.meta[VALUE] = fn(*fx.map_arg(args, lambda n: n.meta[VALUE]))
        kinds = {n.meta.get(DEPENDS, DATA) for n in inputs}
        new.meta[DEPENDS] = DATA if DATA in kinds else min(kinds, default=CONST)
        return new

    def _target(self, node: fx.Node, module: nn.Module, name: str | None) -> str:
        if name is not None:
            return self.add_module(name, module, self.path(node))
        return self._own(node, module, "")

    def _own(self, node: fx.Node, module: nn.Module, suffix: str) -> str:
        """Register a module with no module of the user behind it, named after ``node`` under
        its owner's path: ``<owner path>.lumos_<node name><suffix>``, its own origin."""
        owner = self.path(node)
        prefix = "" if owner == "<root>" else owner + "."
        target = self.new_name(f"{prefix}lumos_{node.name}{suffix}")
        return self.add_module(target, module, target)

    def bypass(self, node: fx.Node, source: Any) -> None:
        """Remove ``node`` (an identity), its users reading ``source`` instead (which becomes
        the output of the user's modules ``node`` was the output of)."""
        if isinstance(source, fx.Node) and node.meta.get(OUTPUTS):
            source.meta[OUTPUTS] = [*source.meta.get(OUTPUTS, []), *node.meta[OUTPUTS]]
        node.replace_all_uses_with(source)
        self.graph.erase_node(node)

    def after_inplace(self, source: Any, new: fx.Node) -> None:
        """An in-place op on ``source`` became ``new``: later readers of ``source`` read ``new``."""
        if not isinstance(source, fx.Node):
            return
        seen = False
        for node in list(self.graph.nodes):
            if node is new:
                seen = True
            elif seen and source in node.all_input_nodes:
                node.replace_input_with(source, new)


__all__ = ["SHAPE_ATTRS", "SHAPE_METHODS", "PrepGraph", "is_shape_read", "node_inputs"]
