"""Prepare any CNN for LRP: trace a private copy with torch.fx and make every op a typed module.

``prepare(model)`` returns a ``torch.fx.GraphModule`` that computes what ``model`` computes (in
eval mode) and in which every node that computes on activations calls a module whose type tells
the LRP rule: ``nn.Linear`` / ``nn.Conv1d/2d/3d`` (BatchNorm folded in), activations, pooling, and
:mod:`lumos.lrp.ops.layers` (:class:`~lumos.lrp.ops.layers.Sum`, ``Concat``, ``Reshape``, ``Mean``,
``Affine``). Nodes that only compute shapes (``x.size(0)``) may stay as they are. The user's model
is never touched: preparation works on a deep copy, also when it fails.

What cannot be traced or has no rule raises :class:`~lumos.lrp.ops.layers.LRPUnsupportedError`
naming the operation or module path and what to do.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch
from torch import Tensor, fx, nn

from lumos.lrp.capture.batchnorm import fold_batchnorms, fold_paddings
from lumos.lrp.capture.graph import PrepGraph
from lumos.lrp.capture.windows import decompose_windows, record_shapes
from lumos.lrp.errors import LRPUnsupportedError
from lumos.lrp.ops.attention import ATTENTION_LAYERS, decompose_attention
from lumos.lrp.ops.canonize import canonize_functions, canonize_modules, op_name
from lumos.lrp.ops.constants import constant_nodes, materialize_constants
from lumos.lrp.ops.layers import SUPPORTED as _CNN_LAYERS
from lumos.lrp.ops.norms import NORM_MODULES, NORMS

__all__ = ["SUPPORTED", "LRPUnsupportedError", "prepare"]

#: Every module type a prepared graph's ``call_module`` nodes may target.
SUPPORTED: tuple[type[nn.Module], ...] = (*_CNN_LAYERS, *ATTENTION_LAYERS, *NORMS)
_LEAVES = (*SUPPORTED, *NORM_MODULES, nn.modules.batchnorm._BatchNorm, nn.Identity,
           nn.modules.dropout._DropoutNd, nn.Flatten, nn.Unflatten)


_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
               "_backward_pre_hooks", "_forward_hooks_with_kwargs",
               "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called")


class _Tracer(fx.Tracer):
    """Keeps supported modules as leaves (subclasses too, unless they override ``forward``)
    and remembers the module being traced when tracing fails."""

    def __init__(self) -> None:
        super().__init__()
        self.record_stack_traces = True
        self.failed_at: str | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, _LEAVES) and _forward_owner(m).__module__.startswith(
                ("torch.nn", "lumos.")):
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_at is None:
                self.failed_at = self.path_of_module(m) or "<root>"
            raise


def _forward_owner(m: nn.Module) -> type:
    """The class in ``type(m)``'s MRO that defines the ``forward`` that runs."""
    return next(c for c in type(m).__mro__ if "forward" in vars(c))


def prepare(model: nn.Module, example: Tensor | None = None) -> fx.GraphModule:
    """Return an LRP-ready copy of ``model``: traced, canonical, with BatchNorm folded.

    Parameters
    ----------
    model : nn.Module
        Any model torch.fx can trace (torchvision CNNs, models with functional ops in
        ``forward``). It is deep-copied and the copy is put in eval mode; ``model`` itself is
        left exactly as it was.
    example : Tensor, optional
        An input batch. When given, the prepared copy is checked to reproduce the eval-mode
        copy's output on it, which catches models whose traced graph differs from eager code.

    Returns
    -------
    torch.fx.GraphModule
        Every activation-computing node is a ``call_module`` on a module from
        ``lumos.lrp.ops.layers.SUPPORTED``; each module is called by exactly one node. Parameters
        have ``requires_grad=False``. ``gm.lumos_origin`` maps each module name to the path of the
        user's module it stands for. ``gm.lumos_input_shape`` is the example's shape without the
        batch dimension when the graph holds for inputs of that shape only (torchvision's Swin,
        :mod:`lumos.lrp.capture.windows`), else None.

    Raises
    ------
    LRPUnsupportedError
        When tracing fails, or an operation or module has no LRP rule; the message names the
        operation or module path and what to do.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    private = _private_copy(model)
    with record_shapes(private) as shapes:
        expected = _reference(private, example)
    decompose_attention(private)   # the private copy's nn.MultiheadAttention, as traced ops
    sized = decompose_windows(private, None if example is None else shapes)
    g = _trace(private)
    _one_module_per_node(g)   # first: rewriting one call's layer must not change another's
    canonize_modules(g)
    canonize_functions(g)
    fold_paddings(g)
    fold_batchnorms(g)
    _drop_dead(g)
    materialize_constants(g)
    _check(g)
    gm = _build(g)
    gm.lumos_input_shape = tuple(example.shape[1:]) if sized and example is not None \
        else None  # type: ignore[assignment]
    if example is not None:
        _compare(gm, example, expected)
    return gm


def _private_copy(model: nn.Module) -> nn.Module:
    try:
        private = copy.deepcopy(model)
    except Exception as err:
        raise LRPUnsupportedError(f"cannot copy the model for LRP ({err}); make it "
                                  "deep-copyable (copy.deepcopy)") from err
    for module in private.modules():   # hooks of the user (copied by reference) never run
        for name in _HOOK_DICTS:
            getattr(module, name, {}).clear()
    return private.eval()


def _reference(private: nn.Module, example: Tensor | None) -> Any:
    if example is None:
        return None
    with torch.no_grad():
        return private(example)


def _defaults(model: nn.Module) -> dict[str, Any]:
    """The root's optional arguments with simple defaults (``attn_mask=None``, flags): traced as
    those constants, so that ``if attn_mask is not None`` in a model's code takes its branch."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())[1:]
    except (TypeError, ValueError):
        return {}
    simple = (type(None), bool, int, float, str)
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty
            and isinstance(p.default, simple)}


def _drop_specialized(graph: fx.Graph) -> None:
    """Remove the placeholders of arguments fixed to their defaults, and their guards."""
    extra = [n for n in graph.nodes if n.op == "placeholder"][1:]
    doomed: set[fx.Node] = set()
    for node in graph.nodes:
        if (node in extra and node.args) or (node.all_input_nodes and all(
                a in doomed or a in extra for a in node.all_input_nodes)):
            doomed.add(node)
    for node in reversed(list(graph.nodes)):
        if node in doomed and all(u in doomed for u in node.users):
            graph.erase_node(node)


def _trace(private: nn.Module) -> PrepGraph:
    tracer = _Tracer()
    try:
        graph = tracer.trace(private, concrete_args=_defaults(private) or None)
        _drop_specialized(graph)
    except Exception as err:
        where = tracer.failed_at or "<root>"
        raise LRPUnsupportedError(
            f"cannot trace the model with torch.fx in module '{where}': {err}. LRP needs a "
            "static graph: remove Python control flow on tensor values (if/while on "
            "activations, .item()), or compute it outside the model") from err
    modules = {str(n.target): private.get_submodule(str(n.target))
               for n in graph.nodes if n.op == "call_module"}
    attrs = {str(n.target): _get_attr(private, str(n.target))
             for n in graph.nodes if n.op == "get_attr"}
    return PrepGraph(graph, modules, attrs, origin={name: name for name in modules})


def _get_attr(root: nn.Module, target: str) -> Any:
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _one_module_per_node(g: PrepGraph) -> None:
    """Give each call of a reused module (ResNet's ``self.relu``) a copy of its own."""
    seen: set[str] = set()
    for node in g.graph.nodes:
        if node.op != "call_module":
            continue
        target = str(node.target)
        if target in seen:
            node.target = g.add_module(target, copy.deepcopy(g.modules[target]),
                                       g.origin.get(target, target))
        seen.add(str(node.target))


def _check(g: PrepGraph) -> None:
    """Every remaining node is a supported module call, a shape computation, or I/O."""
    constants = constant_nodes(g)   # calls mark_shapes
    for node in g.graph.nodes:
        if node.op == "call_module" and not isinstance(g.modules[str(node.target)], SUPPORTED):
            module = g.modules[str(node.target)]
            raise g.error(node, f"module {type(module).__name__}", "no rule maps it")
        if node.op in ("call_function", "call_method") and not g.is_shape(node) \
                and node not in constants:
            raise g.error(node, f"operation {op_name(node)}", "no rule maps it")
        if node.op == "get_attr" and any(not g.is_shape(u) for u in node.users):
            raise g.error(node, f"parameter or buffer '{node.target}' used outside its layer",
                          "use it only inside supported layers")


def _drop_dead(g: PrepGraph) -> None:
    """Erase nodes whose results nothing reads (a sigmoid fused into SiLU, stale weights)."""
    for node in reversed(list(g.graph.nodes)):
        if node.op not in ("placeholder", "output") and not node.users:
            g.graph.erase_node(node)


def _build(g: PrepGraph) -> fx.GraphModule:
    for i, node in enumerate(n for n in g.graph.nodes if n.op == "get_attr"):
        # a tensor read only for its shape: a flat name, so it cannot land inside a layer
        value = g.attrs[str(node.target)]
        node.target = f"lumos_attr_{i}"
        g.attrs[node.target] = value
    used = {str(n.target) for n in g.graph.nodes if n.op in ("call_module", "get_attr")}
    owned: dict[str, Any] = {**g.modules, **g.attrs}
    root = {name: owned[name] for name in sorted(used, key=lambda n: n.count("."))}
    gm = fx.GraphModule(root, g.graph, class_name="LRPPrepared")
    gm.graph.lint()
    gm.eval()
    for p in gm.parameters():
        p.requires_grad_(False)
        p.grad = None
    origin = {name: g.origin.get(name, name) for name in sorted(used) if name in g.modules}
    gm.lumos_origin = origin  # type: ignore[assignment]
    return gm


def _compare(gm: fx.GraphModule, example: Tensor, expected: Any) -> None:
    """Raise when the prepared graph computes something else than the eval-mode copy.

    Folding reorders float arithmetic, so the bound depends on precision: a wrong graph
    differs by O(1) of the output's scale, rounding by far less.
    """
    with torch.no_grad():
        got = gm(example)
    if not (isinstance(got, Tensor) and isinstance(expected, Tensor)):
        return
    scale = expected.abs().max().clamp_min(torch.finfo(expected.dtype).tiny)
    if got.shape != expected.shape or not bool(
            (got - expected).abs().max() <= _tolerance(expected) * scale):
        raise LRPUnsupportedError(
            "the prepared model does not reproduce the model's output on the example; "
            "its forward likely depends on values torch.fx cannot see")


def _tolerance(t: Tensor) -> float:
    """Allowed error relative to the output's scale, for ``t``'s dtype and device."""
    if t.dtype == torch.float64:
        return 1e-8
    low = t.dtype in (torch.float16, torch.bfloat16)
    tf32 = t.device.type == "cuda" and (torch.backends.cudnn.allow_tf32
                                        or torch.backends.cuda.matmul.allow_tf32)
    return 5e-2 if low or tf32 else 1e-3
