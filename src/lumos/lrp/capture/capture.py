"""Run the capture: the private copy traced on the example, its scores as the graph's output.

:func:`capture` traces ``logits_of(model(x))`` with :class:`~lumos.lrp.capture.tracer.ValueTracer`
(so a ``ModelOutput``, dict or tuple gives its logits, :mod:`lumos.lrp.capture.outputs`), keeps
the modules the op vocabulary knows as leaves (:data:`LEAVES`) and traces through everything
else, and returns the graph as a :class:`~lumos.lrp.capture.graph.PrepGraph` named by the user's
module paths. A failure names the model's source file and line and the kind of check.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, fx, nn

from lumos.lrp.capture import values as V
from lumos.lrp.capture.graph import PrepGraph
from lumos.lrp.capture.outputs import logits_of
from lumos.lrp.capture.tracer import ValueTracer
from lumos.lrp.errors import LRPUnsupportedError
from lumos.lrp.ops.attention import ATTENTION_LAYERS
from lumos.lrp.ops.layers import SUPPORTED as _LAYERS
from lumos.lrp.ops.leaves import COPY_PADS
from lumos.lrp.ops.norms import NORM_MODULES, NORMS

#: Module types kept as one node (when their ``forward`` is torch's or lumos's own): what the
#: op vocabulary takes as it is, or rewrites as a whole (BatchNorm, padding, norms, dropout).
LEAVES: tuple[type[nn.Module], ...] = (
    *_LAYERS, *ATTENTION_LAYERS, *NORMS, *NORM_MODULES, nn.modules.batchnorm._BatchNorm,
    nn.Identity, nn.modules.dropout._DropoutNd, nn.Flatten, nn.Unflatten, nn.Upsample,
    nn.modules.padding._ConstantPadNd, *COPY_PADS)
_PREFIX = "model."


def _forward_owner(m: nn.Module) -> type:
    """The class in ``type(m)``'s MRO that defines the ``forward`` that runs."""
    return next(c for c in type(m).__mro__ if "forward" in vars(c))


def is_leaf(m: nn.Module, path: str) -> bool:
    """Whether the capture keeps ``m`` as one node: a :data:`LEAVES` type whose forward is
    torch's or lumos's (a subclass with its own forward is traced through)."""
    return isinstance(m, LEAVES) and _forward_owner(m).__module__.startswith(("torch.nn",
                                                                                "lumos."))


class _Root(nn.Module):
    """The traced function: the model's scores on an input."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Any:
        return logits_of(self.model(x))


def capture(model: nn.Module, example: Tensor, shared: list[Tensor]) -> tuple[PrepGraph, bool]:
    """Trace ``model`` (the private copy, eval mode) on ``example``.

    Returns
    -------
    PrepGraph
        The graph, with every node's example value and dependence in its meta
        (:mod:`lumos.lrp.capture.values`), modules and attributes by the user's paths.
    bool
        Whether Python read the batch size as a number (the graph then holds for it only).

    Raises
    ------
    LRPUnsupportedError
        The model decides on the input's data, fails on the example, or returns no tensor.
    """
    root = _Root(model)
    tracer = ValueTracer(is_leaf, example, shared)
    try:
        with torch.no_grad():
            graph = tracer.trace(root)
    except LRPUnsupportedError:
        raise
    except V.CaptureRefused as err:
        raise LRPUnsupportedError(
            f"cannot capture the model for LRP: {err.kind}{_where(tracer, err.where)}. The "
            "capture decides checks on shapes and dtypes from the example, but not on the "
            "input's values: compute that decision outside the model, or base it on shapes "
            "only") from err
    except Exception as err:
        where = V.format_line(V.traceback_line(err.__traceback__))
        raise LRPUnsupportedError(
            f"cannot capture the model for LRP: {type(err).__name__}: "
            f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            f"{_where(tracer, where)}{_hint(err)}") from err
    return _by_user_paths(graph, root), tracer.batch_specialised


def _hint(err: Exception) -> str:
    """What a known capture failure means for the user."""
    if isinstance(err, TypeError) and "positional argument" in str(err):
        return (". A size read from the input (the batch size) was passed to a method of a "
                "tensor the model builds inside forward (t.expand(B, -1)), which torch cannot "
                "record: register that tensor as a buffer of the module (buffers are recorded), "
                "or expand it with -1 against a tensor computed from the input")
    return ""


def _where(tracer: ValueTracer, line: str) -> str:
    module = (tracer.failed_at or "").removeprefix(_PREFIX).removeprefix("model")
    text = f" in module '{module or '<root>'}'"
    return text + (f" at {line}" if line else "")


def _by_user_paths(graph: fx.Graph, root: nn.Module) -> PrepGraph:
    """The graph with the wrapper's ``model.`` prefix gone from targets and module stacks."""
    modules: dict[str, nn.Module] = {}
    attrs: dict[str, Any] = {}
    for node in graph.nodes:
        if V.OUTPUTS in node.meta:
            node.meta[V.OUTPUTS] = [p for p in map(_strip, node.meta[V.OUTPUTS]) if p]
        stack = node.meta.get("nn_module_stack")
        if stack:
            node.meta["nn_module_stack"] = {
                key: (_strip(path), kind) for key, (path, kind) in stack.items()
                if _strip(path)}
        if node.op == "call_module":
            name = _strip(str(node.target))
            modules[name] = root.get_submodule(str(node.target))
            node.target = name
        elif node.op == "get_attr":
            name = _strip(str(node.target))
            attrs[name] = node.meta[V.VALUE]
            node.target = name
    return PrepGraph(graph, modules, attrs, origin={name: name for name in modules})


def _strip(path: str) -> str:
    if path == "model":
        return ""
    return path[len(_PREFIX):] if path.startswith(_PREFIX) else path


__all__ = ["LEAVES", "capture", "is_leaf"]
