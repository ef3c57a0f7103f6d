"""Capture a model as a torch.fx graph specialised on one example input.

:class:`ValueTracer` is a ``torch.fx.Tracer`` whose proxies carry the value each node computes
on the example (:mod:`lumos.lrp.capture.values`): the model runs once, op by op, as it is
recorded. Whatever Python asks of a traced value is answered from the example: the shape, dtype
and device of a tensor, ``len``, iteration, and ``bool`` / ``int`` / ``float`` of values that do
not depend on the input's *data* (sizes, parameters, buffers). So checks such as
``if x.dtype != w.dtype``, ``int(x.shape[-2])``, ``if width % patch != 0`` or a window size
taken from the feature map are decided during capture, and the graph holds for inputs of the
example's size. Functions a library hid from torch.fx (``torch.fx.wrap``, timm's and
torchvision's helpers) are traced through, not kept opaque; modules a model builds inside its
forward (``nn.Softmax(-1)(x)``) are adopted into the private copy.

The batch size stays symbolic where the model reads it as a size (``x.size(0)``,
``B, C, H, W = x.shape``): such a read is a graph node, so the graph serves other batch sizes,
unless Python needs the number itself (``range(B)``, ``if B > 1``); the tracer then records
that it specialised on the batch size (:attr:`ValueTracer.batch_specialised`).
"""

from __future__ import annotations

import contextlib
import operator
import types
from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor, fx, nn
from torch.fx.node import map_aggregate

from lumos.lrp.capture import values as V


class ValueTracer(fx.Tracer):
    """The capture tracer (see the module docstring).

    Parameters
    ----------
    leaf : callable
        ``leaf(module, path)``: whether a module stays one ``call_module`` node.
    example : Tensor
        The input the model is traced on.
    shared : list of Tensor
        Tensors the capture must never write to (the user's parameters and buffers).
    """

    def __init__(self, leaf: Callable[[nn.Module, str], bool], example: Tensor,
                 shared: list[Tensor]) -> None:
        super().__init__(autowrap_modules=(), autowrap_functions=())  # type: ignore[arg-type]
        self.record_stack_traces = False   # create_node records the user's line instead
        self._leaf, self._example = leaf, example
        self._guard = WriteGuard(shared)
        self._plain = 0
        self._names: dict[int, str] = {}
        #: Whether Python read the batch size as a number: the graph then holds for it only.
        self.batch_specialised = False
        #: The module path being traced when the capture failed.
        self.failed_at: str | None = None

    def trace(self, root: Any, concrete_args: Any = None) -> fx.Graph:
        self._names = {id(t): n for n, t in [*root.named_parameters(), *root.named_buffers()]}
        return super().trace(root, concrete_args)

    # ---- answering Python from the example ---------------------------------------------------
    def concrete(self, proxy: Any, kind: str) -> Any:
        """The example's value of ``proxy`` for Python to decide on; refuse data-dependent ones."""
        depends = V.depends_of(proxy)
        if depends == V.DATA:
            raise V.CaptureRefused(f"{kind} that depends on the input's data (not its shape)",
                                   V.format_line(V.user_line()))
        self.batch_specialised = self.batch_specialised or depends == V.SHAPE
        return V.value_of(proxy)

    def shape_of(self, proxy: Any) -> Any:
        value = V.value_of(proxy)
        if V.depends_of(proxy) == V.CONST or value.dim() == 0:
            return value.shape
        return V.TracedShape((self.create_proxy("call_method", "size", (proxy, 0), {}),
                              *value.shape[1:]))

    def to_bool(self, obj: fx.Proxy) -> bool:
        return bool(self.concrete(obj, "a Python if / while / bool() on a traced value"))

    def iter(self, obj: fx.Proxy) -> Iterator[Any]:
        return iter(obj)

    def keys(self, obj: fx.Proxy) -> Any:
        return V.value_of(obj).keys()

    @contextlib.contextmanager
    def plainly(self) -> Iterator[None]:
        """Module calls and attribute reads behave as outside tracing (to compute values)."""
        self._plain += 1
        try:
            yield
        finally:
            self._plain -= 1

    # ---- recording -----------------------------------------------------------------------------
    def proxy(self, node: fx.Node) -> fx.Proxy:
        return V.ValueProxy(node, self)

    def create_node(self, kind: str, target: Any, args: Any, kwargs: Any,
                    name: str | None = None, type_expr: Any = None) -> fx.Node:
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        node.meta[V.SOURCE] = V.user_line()
        if kind == "get_attr":
            with self.plainly():
                node.meta[V.VALUE] = V.run_op(self.root, kind, target, (), {})
            node.meta[V.DEPENDS] = V.CONST
        elif kind == "placeholder":
            node.meta[V.VALUE], node.meta[V.DEPENDS] = self._example, V.DATA
        return node

    def create_arg(self, a: Any) -> Any:
        if type(a).__module__ == "numpy" and hasattr(a, "item"):   # numpy scalars from sizes
            return a.item()
        if isinstance(a, Tensor) and id(a) in self._names:   # fast path: by identity
            return self.create_node("get_attr", self._names[id(a)], (), {})
        return super().create_arg(a)

    def create_proxy(self, kind: str, target: Any, args: tuple[Any, ...],
                     kwargs: dict[str, Any], name: str | None = None, type_expr: Any = None,
                     proxy_factory_fn: Any = None) -> Any:
        if kind == "call_function" and _inlined(target):
            return target(*args, **kwargs)   # a library function hidden from fx: traced
        if kind == "call_function" and target is not getattr and \
                getattr(target, "__module__", None) in ("math", "builtins"):
            return _on_numbers(self, target, args, kwargs)
        plain = _shape_only(kind, target, args)
        if plain is not None:   # x.view_as(y): recorded as x.view(y's shape)
            return self.create_proxy(kind, plain[0], plain[1], kwargs)
        answer = V.answer_metadata(self, kind, target, args, kwargs)
        if answer is not V.NOT_META:
            return answer
        if kind == "placeholder":
            return super().create_proxy(kind, target, args, kwargs, name, type_expr)
        values = map_aggregate(args, V.value_of), map_aggregate(kwargs, V.value_of)
        self._guard.check(kind, target, args, values[0])
        with self.plainly():
            value = V.run_op(self.root, kind, target, *values)
        if value is None and not _inplace(kind, target):
            return None   # nn.Identity()(None): nothing to record
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr)
        proxy.node.meta[V.VALUE] = value
        proxy.node.meta[V.DEPENDS] = V.dependence(kind, target, args, kwargs)
        return None if value is None else proxy

    # ---- modules and attributes ------------------------------------------------------------------
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return self._leaf(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        if self._plain:
            return forward(*args, **kwargs)
        if self.submodule_paths is not None and m not in self.submodule_paths:
            _adopt(self, m)
        try:
            out = super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_at is None:
                self.failed_at = self.path_of_module(m) or "<root>"
            raise
        path = self.path_of_module(m)
        for proxy in V.proxies(out):   # where the user's module hands its result on
            proxy.node.meta.setdefault(V.OUTPUTS, []).append(path)
        return out

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        if self._plain or not isinstance(attr_val, Tensor):   # buffers too: b.expand(B, ...)
            return attr_val
        name = self._names.get(id(attr_val))
        if name is None:
            return attr_val
        if name not in parameter_proxy_cache:
            parameter_proxy_cache[name] = self.create_proxy("get_attr", name, (), {})
        return parameter_proxy_cache[name]


class WriteGuard:
    """Refuses in-place writes into the user's tensors during capture, and marks the nodes
    whose values a later in-place operation changed (their recorded value is then stale).

    Parameters
    ----------
    shared : list of Tensor
        The tensors never to write to (the user's parameters and buffers).
    """

    def __init__(self, shared: list[Tensor]) -> None:
        self._protected = {t.untyped_storage().data_ptr() for t in shared}

    def check(self, kind: str, target: Any, args: tuple[Any, ...],
              values: tuple[Any, ...]) -> None:
        """Raise for an in-place op on a protected tensor; mark its traced operand mutated."""
        if not _inplace(kind, target) or not values or not isinstance(values[0], Tensor):
            return
        if values[0].untyped_storage().data_ptr() in self._protected:
            raise V.CaptureRefused("an in-place write into a parameter or buffer of the model "
                                   "during forward", V.format_line(V.user_line()))
        if isinstance(args[0], fx.Proxy):
            args[0].node.meta[V.MUTATED] = True


def _on_numbers(tracer: ValueTracer, target: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
    """A ``math`` or builtin function called on traced values: run on the example's numbers."""
    scalar = lambda a: tracer.concrete(a, "a Python math function of a traced value") \
        if isinstance(a, fx.Proxy) else a
    return target(*map_aggregate(args, scalar), **map_aggregate(kwargs, scalar))


def _shape_only(kind: str, target: Any,
                args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]] | None:
    """``x.view_as(y)`` and friends read only ``y``'s shape: the plain method and its arguments
    (``x.view(y.shape)``); None for other calls."""
    plain = {"view_as": "view", "reshape_as": "reshape", "expand_as": "expand"}
    if kind != "call_method" or target not in plain or len(args) != 2 or \
            not isinstance(args[1], fx.Proxy):
        return None
    return plain[target], (args[0], tuple(args[1].shape))


def _adopt(tracer: ValueTracer, m: nn.Module) -> None:
    """Register a module the model builds during forward under the module that calls it."""
    stack = tracer.module_stack
    owner_path = next(reversed(stack.values()))[0] if stack else ""
    with tracer.plainly():
        owner = tracer.root.get_submodule(owner_path)
        base, k = f"lumos_{type(m).__name__.lower()}", 0
        while hasattr(owner, f"{base}_{k}"):
            k += 1
        owner.add_module(f"{base}_{k}", m)
    assert tracer.submodule_paths is not None
    tracer.submodule_paths[m] = ".".join(p for p in (owner_path, f"{base}_{k}") if p)


def _inplace(kind: str, target: Any) -> bool:
    name = str(target)
    return target is operator.setitem or (kind == "call_method" and name.endswith("_")
                                          and not name.startswith("_"))


def _inlined(target: Any) -> bool:
    """A Python function of a library (not torch, not operator, not math): traced through."""
    if not isinstance(target, types.FunctionType):
        return False
    module = (getattr(target, "__module__", "") or "").split(".")[0]
    return module not in ("torch", "_operator", "operator", "builtins", "math")


__all__ = ["ValueTracer"]
