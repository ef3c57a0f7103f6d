"""Values of a capture: what each traced node computes on the example, and what it depends on.

Every node of a capture carries the example's value (``node.meta[VALUE]``) and one of three
dependences (``node.meta[DEPENDS]``): :data:`DATA` (computed from the input's values),
:data:`SHAPE` (computed from the input's shape only: the batch size, ``zeros_like(x)``) or
:data:`CONST` (from parameters, buffers and constants only). :class:`ValueProxy` answers Python's
questions about a traced value from the example, and refuses to decide on data
(:class:`CaptureRefused`, with the model's ``file:line``).
"""

from __future__ import annotations

import linecache
import math
import operator
import os
import sys
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, fx, nn
from torch.fx.node import map_aggregate

VALUE = "lumos_value"
DEPENDS = "lumos_depends"
#: ``(file, line)`` of the model's code that created a node.
SOURCE = "lumos_source"
#: Set on a node whose value a later in-place operation changed.
MUTATED = "lumos_mutated"
#: The user's module paths whose output a node is (a block's output, a layer's output).
OUTPUTS = "lumos_outputs"
#: The shape a tensor node had on the example (kept when the values are dropped).
SHAPE_META = "lumos_shape"
DATA, SHAPE, CONST = "data", "shape", "const"

#: Tensor attributes that describe a tensor without reading its values.
META_ATTRS = frozenset({
    "shape", "ndim", "dtype", "device", "is_cuda", "is_cpu", "is_mps", "is_meta", "layout",
    "is_sparse", "is_quantized", "requires_grad", "is_leaf", "itemsize", "names", "is_nested"})
#: Tensor methods that describe a tensor without reading its values (``size`` and ``numel``
#: are answered separately: they may read the batch size).
META_METHODS = frozenset({
    "dim", "ndimension", "stride", "is_contiguous", "is_floating_point", "is_complex",
    "element_size", "get_device", "storage_offset", "is_signed", "type"})
_META_FUNCTIONS = (torch.numel, torch.is_floating_point, torch.is_complex, torch.is_tensor)
#: Creation from another tensor's metadata: ``x.new_zeros(size)`` reads only x's dtype and
#: device, ``zeros_like(x)`` also its shape.
NEW_OPS = frozenset({"new_zeros", "new_ones", "new_empty", "new_full", "new_tensor"})
LIKE_OPS = frozenset({"zeros_like", "ones_like", "empty_like", "full_like"})
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__)) + os.sep
_LRP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
#: Returned by :func:`answer_metadata` when the question is not about metadata.
NOT_META = object()


class CaptureRefused(Exception):
    """A Python decision on the input's data, or another step the capture cannot record.

    Attributes
    ----------
    kind : str
        What kind of check or operation it was.
    where : str
        ``file:line (code)`` of the model's code that made it (empty when unknown).
    """

    def __init__(self, kind: str, where: str) -> None:
        super().__init__(f"{kind} at {where}" if where else kind)
        self.kind, self.where = kind, where


def user_line() -> tuple[str, int] | None:
    """``(file, line)`` of the innermost frame on the stack outside torch and lumos.lrp."""
    frame: Any = sys._getframe(1)
    while frame is not None:
        path = frame.f_code.co_filename
        if not path.startswith((_TORCH_DIR, _LRP_DIR, "<")):
            return path, frame.f_lineno
        frame = frame.f_back
    return None


def traceback_line(tb: Any) -> tuple[str, int] | None:
    """``(file, line)`` of the innermost traceback frame outside torch and lumos.lrp."""
    found = None
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename
        if not path.startswith((_TORCH_DIR, _LRP_DIR, "<")):
            found = (path, tb.tb_lineno)
        tb = tb.tb_next
    return found


def format_line(source: tuple[str, int] | None) -> str:
    """``file:line (code)`` of a :data:`SOURCE` entry; empty for None."""
    if source is None:
        return ""
    code = linecache.getline(*source).strip()
    return f"{source[0]}:{source[1]}" + (f" ({code})" if code else "")


def value_of(arg: Any) -> Any:
    """The example's value behind a proxy or node; other arguments as they are."""
    if isinstance(arg, fx.Proxy):
        arg = arg.node
    return arg.meta[VALUE] if isinstance(arg, fx.Node) else arg


def depends_of(arg: Any) -> str:
    """:data:`DATA`, :data:`SHAPE` or :data:`CONST` for a proxy or node (constants: CONST)."""
    if isinstance(arg, fx.Proxy):
        arg = arg.node
    return arg.meta.get(DEPENDS, CONST) if isinstance(arg, fx.Node) else CONST


def proxies(arg: Any) -> list[fx.Proxy]:
    """The proxies inside nested tuples, lists and dicts."""
    found: list[fx.Proxy] = []
    map_aggregate(arg, lambda a: found.append(a) if isinstance(a, fx.Proxy) else None)
    return found


class ValueProxy(fx.Proxy):
    """A proxy that knows the example's value of its node (see the module docstring)."""

    @property
    def value(self) -> Any:
        return value_of(self)

    def __getattr__(self, name: str) -> Any:
        if name in META_ATTRS:
            return self._tracer.shape_of(self) if name == "shape" else getattr(self.value, name)
        return ValueAttribute(self, name)

    @property
    def _tracer(self) -> Any:
        return self.tracer

    def __len__(self) -> int:
        if isinstance(self.value, Tensor) and self.value.dim() > 0:
            return int(self._concrete("len() of a traced tensor", self._tracer.shape_of(self)[0]))
        return len(self.value)

    def __iter__(self) -> Iterator[Any]:
        item: Any = self
        return iter([item[i] for i in range(len(self))])

    def __bool__(self) -> bool:
        return bool(self._concrete("a Python if / while / bool() on a traced value"))

    def __int__(self) -> int:
        return int(self._concrete("int() of a traced value"))

    def __float__(self) -> float:
        return float(self._concrete("float() of a traced value"))

    def __index__(self) -> int:
        return operator.index(self._concrete("a traced value used as a Python index or size"))

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)   # for messages only: nothing is decided on it

    def __setitem__(self, index: Any, value: Any) -> None:
        self.tracer.create_proxy("call_function", operator.setitem, (self, index, value), {})

    def _concrete(self, kind: str, proxy: Any = None) -> Any:
        return self._tracer.concrete(self if proxy is None else proxy, kind)


class ValueAttribute(fx.proxy.Attribute, ValueProxy):
    """``proxy.name``: a method about to be called or an attribute read (recorded lazily)."""


class TracedShape(tuple):
    """``x.shape`` of a tensor computed from the input: the first size is a graph value (for most
    tensors the batch size), the others the example's numbers."""

    def numel(self) -> Any:
        return math.prod(self)


def answer_metadata(tracer: Any, kind: str, target: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
    """The answer to a question about a tensor's metadata, or :data:`NOT_META`."""
    if kind == "call_function" and target is getattr and args[1] in META_ATTRS:
        return getattr(args[0], args[1])
    if kind == "call_function" and target in _META_FUNCTIONS:
        return target(value_of(args[0]))
    if kind != "call_method" or not args or not isinstance(value_of(args[0]), Tensor):
        return NOT_META
    x, value = args[0], value_of(args[0])
    if target in META_METHODS:
        return getattr(value, target)(*map_aggregate(args[1:], value_of), **kwargs)
    if target == "size":
        dims = [*args[1:], *kwargs.values()]
        if not dims:
            return tracer.shape_of(x)
        dim = operator.index(value_of(dims[0]))
        if value.dim() and dim % value.dim() == 0 and depends_of(x) != CONST:
            return NOT_META   # the batch size: recorded as a node
        return value.size(dim)
    if target in ("numel", "nelement") and depends_of(x) == CONST:
        return value.numel()
    return NOT_META


def dependence(kind: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """What a new node's value depends on, from its arguments."""
    if kind == "placeholder":
        return DATA
    name = str(target) if kind == "call_method" else getattr(target, "__name__", "")
    if kind == "call_method" and name in ("size", "numel", "nelement"):
        return SHAPE
    inputs = args[1:] if kind == "call_method" and name in NEW_OPS else args
    found = [depends_of(a) for a in proxies((inputs, kwargs))]
    if name in LIKE_OPS:
        found = [SHAPE if d == DATA else d for d in found]
    if DATA in found:
        return DATA
    return SHAPE if SHAPE in found else CONST


def run_op(root: nn.Module, kind: str, target: Any, args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> Any:
    """Run one recorded operation on the example's values."""
    if kind == "call_function":
        return target(*args, **kwargs)
    if kind == "call_method":
        self_obj, *rest = args
        return getattr(self_obj, target)(*rest, **kwargs)
    if kind == "call_module":
        return root.get_submodule(target)(*args, **kwargs)
    if kind == "get_attr":
        value: Any = root
        for part in str(target).split("."):
            value = getattr(value, part)
        return value
    raise ValueError(f"cannot run a {kind} node")


__all__ = ["CONST", "DATA", "DEPENDS", "MUTATED", "NOT_META", "OUTPUTS", "SHAPE", "SHAPE_META",
           "SOURCE", "VALUE",
           "CaptureRefused", "TracedShape", "ValueAttribute", "ValueProxy", "answer_metadata",
           "dependence", "depends_of", "format_line", "proxies", "run_op", "traceback_line",
           "user_line", "value_of"]
