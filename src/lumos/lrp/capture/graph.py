"""The working state of model preparation: a traced graph, the modules it calls, and provenance.

:mod:`lumos.lrp.ops.canonize` and :mod:`lumos.lrp.capture.batchnorm` rewrite the graph through the
small API of :class:`PrepGraph` (replace a node by a module call, drop a node, name a new module,
raise an error that names the source), so that each pass stays a few lines about its own concern.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import fx, nn

from lumos.lrp.errors import LRPUnsupportedError

#: Tensor methods and attributes that read a tensor's metadata, never its values.
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


def _is_shape_read(node: fx.Node) -> bool:
    if node.op == "call_method":
        return node.target in SHAPE_METHODS
    return (node.op == "call_function" and node.target is getattr
            and len(node.args) > 1 and node.args[1] in SHAPE_ATTRS)


@dataclass
class PrepGraph:
    """A traced model while preparation rewrites it.

    Attributes
    ----------
    graph : torch.fx.Graph
        The graph being rewritten in place.
    modules : dict[str, nn.Module]
        Every module a ``call_module`` node may target, by qualified name.
    attrs : dict[str, Any]
        Values of ``get_attr`` nodes (parameters and buffers used functionally).
    origin : dict[str, str]
        Prepared module name → path of the user's module it stands for.
    """

    graph: fx.Graph
    modules: dict[str, nn.Module]
    attrs: dict[str, Any]
    origin: dict[str, str] = field(default_factory=dict)
    _shape: set[fx.Node] = field(default_factory=set)

    # ---- classification -------------------------------------------------------------------
    def mark_shapes(self) -> None:
        """Find the nodes that compute only on shapes (``x.size(0)``, ``x.shape[2:]``, ints)."""
        self._shape = set()
        for node in self.graph.nodes:
            if node.op not in ("call_function", "call_method"):
                continue
            ins = list(node_inputs((node.args, node.kwargs)))
            if _is_shape_read(node) or (ins and all(n in self._shape for n in ins)):
                self._shape.add(node)

    def is_shape(self, node: Any) -> bool:
        """True for a node (or constant) that carries no activation values."""
        return not isinstance(node, fx.Node) or node in self._shape

    def is_tensor(self, arg: Any) -> bool:
        """True for a node that carries activations (or parameters)."""
        return isinstance(arg, fx.Node) and arg not in self._shape

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
        line = _source_line(node)
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
        the module stands for the user's module at ``self.path(node)``.
        """
        owner = self.path(node)
        if name is None:
            prefix = "" if owner == "<root>" else owner + "."
            target = self.new_name(f"{prefix}lumos_{node.name}")
            self.add_module(target, module, target)
        else:
            target = self.add_module(name, module, owner)
        with self.graph.inserting_after(node):
            new = self.graph.call_module(target, args, kwargs or {})
        new.meta = dict(node.meta)
        node.replace_all_uses_with(new)
        self.graph.erase_node(node)
        return new

    def bypass(self, node: fx.Node, source: Any) -> None:
        """Remove ``node`` (an identity), its users reading ``source`` instead."""
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


_HERE = os.path.dirname(os.path.abspath(__file__))


def _source_line(node: fx.Node) -> str:
    trace = node.meta.get("stack_trace") or node.stack_trace or ""
    lines = [ln.strip() for ln in str(trace).splitlines() if ln.strip().startswith("File ")
             and f"{os.sep}torch{os.sep}" not in ln and _HERE not in ln]   # the user's line
    return lines[-1].replace("File ", "", 1) if lines else ""
