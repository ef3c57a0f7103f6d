"""Prepare any classifier for LRP: capture it on an example, fold constants, canonicalise.

``prepare(model, example)`` returns a ``torch.fx.GraphModule`` that computes the model's scores
(in eval mode) for inputs of the example's size, and in which every node that computes on
activations calls a module of the op vocabulary (:mod:`lumos.lrp.ops`) whose type tells the
rule. The stages:

1. a private copy that shares the user's tensors (:mod:`~lumos.lrp.capture.private`), its
   ``nn.MultiheadAttention`` spelled out (:mod:`~lumos.lrp.capture.multihead`);
2. the capture on the example (:mod:`~lumos.lrp.capture.capture`): checks on shapes and dtypes
   decided, the output's logits taken;
3. constant folding (:mod:`~lumos.lrp.capture.folding`);
4. canonicalisation into the op vocabulary (:mod:`lumos.lrp.ops.canonize`), BatchNorm and zero
   padding folded (:mod:`~lumos.lrp.capture.batchnorm`), parameters read outside any layer made
   constants;
5. the check that the result reproduces the model (:mod:`~lumos.lrp.capture.verify`).

The user's model is never changed, also when preparation fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, fx, nn

from lumos.lrp.capture.batchnorm import fold_batchnorms, fold_paddings
from lumos.lrp.capture.capture import capture
from lumos.lrp.capture.folding import fold_constants
from lumos.lrp.capture.graph import PrepGraph
from lumos.lrp.capture.multihead import decompose_attention
from lumos.lrp.capture.outputs import logits_of
from lumos.lrp.capture.private import private_copy, shared_tensors, structural_copy
from lumos.lrp.capture.values import SHAPE_META, VALUE
from lumos.lrp.capture.verify import (
    Conditioning,
    check_reproduces,
    magnitude,
    sensitivity,
    wide_sensitivity,
)
from lumos.lrp.errors import LRPUnsupportedError
from lumos.lrp.ops.canonize import SUPPORTED, canonize_functions, canonize_modules, op_name
from lumos.lrp.ops.constants import constant_nodes, materialize_constants


def prepare(model: nn.Module, example: Tensor | None = None) -> fx.GraphModule:
    """Return an LRP-ready graph of ``model`` for inputs shaped like ``example``.

    Parameters
    ----------
    model : nn.Module
        Any classifier whose forward takes the image batch as its first argument and returns
        scores: a tensor, or a ``ModelOutput`` / dict / tuple (its ``logits``, else its first
        tensor). ``model`` itself is never changed.
    example : Tensor
        An input batch: the graph is specialised on its shape (checks on sizes and dtypes are
        decided on it), and checked to reproduce the model's scores on it.

    Returns
    -------
    torch.fx.GraphModule
        Every activation-computing node is a ``call_module`` on a module of
        :data:`~lumos.lrp.ops.canonize.SUPPORTED`; each module is called by exactly one node.
        ``gm.lumos_origin`` maps each module name to the path of the user's module (or
        parameter) it stands for; ``gm.lumos_input_shape`` is the example's shape without the
        batch dimension, ``gm.lumos_batch`` the batch size the graph is limited to (None: any),
        ``gm.lumos_growth`` how much the model's arithmetic amplifies rounding on the example
        (what the bound of later reproduction checks scales with).

    Raises
    ------
    LRPUnsupportedError
        The model cannot be captured (the message names its source file and line and the kind
        of check), an operation or module has no LRP rule (named with its module path and
        source line), or the prepared graph does not reproduce the model (by how much, and the
        first node that differs).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example, Tensor):
        raise TypeError("prepare needs an example input batch (a torch.Tensor): the graph is "
                        "specialised on its shape")
    model = compiled_source(model)
    private = private_copy(model)
    expected = reference_scores(private, example)
    decompose_attention(private)
    g, batch_bound = capture(private, example, shared_tensors(model))
    # before folding: the magnitudes the model itself went through
    conditioning = Conditioning(magnitude(g.graph),
                                sensitivity(lambda x: reference_scores(private, x), example))
    fold_constants(g)
    _one_module_per_node(g)   # first: rewriting one call's layer must not change another's
    canonize_modules(g)
    canonize_functions(g)
    fold_paddings(g)
    fold_batchnorms(g)
    _drop_dead(g)
    materialize_constants(g)
    _check(g)
    gm = _build(g)
    gm.lumos_input_shape = tuple(example.shape[1:])  # type: ignore[assignment]
    gm.lumos_batch = int(example.shape[0]) if batch_bound else None  # type: ignore[assignment]
    # float32: the input probe of the growth runs on a float64 copy, only if the bound needs it
    measure = (lambda: wide_sensitivity(lambda: _widened(private), example)) \
        if example.dtype == torch.float32 else None
    gm.lumos_growth = check_reproduces(  # type: ignore[assignment]
        gm, example, expected, gm.lumos_origin, conditioning,  # type: ignore[arg-type]
        measure)
    _forget_values(gm.graph)
    return gm


def _widened(private: nn.Module) -> Callable[[Tensor], Any]:
    """The scores of a float64 copy of ``private`` (its own tensors: ``private`` and the
    prepared graph keep theirs)."""
    wide = private_copy(private).double()
    return lambda x: reference_scores(wide, x)


def compiled_source(model: nn.Module) -> nn.Module:
    """The model ``torch.compile`` wrapped (same function, same parameters), else ``model``:
    a compiled graph cannot be traced, its source can."""
    source = getattr(model, "_orig_mod", None)
    while type(model).__name__ == "OptimizedModule" and isinstance(source, nn.Module):
        model, source = source, getattr(source, "_orig_mod", None)
    return model


def reference_scores(private: nn.Module, x: Tensor) -> Any:
    """The eval-mode model's scores on ``x`` (its logits), computed without gradients."""
    try:
        with torch.no_grad():
            return logits_of(private(x))
    except LRPUnsupportedError:
        raise
    except Exception as err:
        raise LRPUnsupportedError(f"the model fails on the example input of shape "
                                  f"{tuple(x.shape)} ({type(err).__name__}: {err}); LRP "
                                  "explains a classifier of image batches") from err


def _one_module_per_node(g: PrepGraph) -> None:
    """Give each call of a reused module (ResNet's ``self.relu``) a copy of its own."""
    seen: set[str] = set()
    for node in g.graph.nodes:
        if node.op != "call_module":
            continue
        target = str(node.target)
        if target in seen:
            node.target = g.add_module(target, structural_copy(g.modules[target]),
                                       g.origin.get(target, target))
        seen.add(str(node.target))


def _check(g: PrepGraph) -> None:
    """Every remaining node is a supported module call, a shape or constant computation, a
    detached one (no relevance flows into it), or I/O."""
    constants = constant_nodes(g)
    for node in g.graph.nodes:
        if node.op == "call_module" and not isinstance(g.modules[str(node.target)], SUPPORTED):
            module = g.modules[str(node.target)]
            raise g.error(node, f"module {type(module).__name__}", "no rule maps it")
        if node.op in ("call_function", "call_method") and not g.is_shape(node) \
                and node not in constants and node not in g.detached:
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
    origin = {name: g.origin.get(name, name) for name in sorted(used) if name in g.modules}
    gm.lumos_origin = origin  # type: ignore[assignment]
    return gm


def _forget_values(graph: fx.Graph) -> None:
    """Drop the example's values from the nodes (they would keep every activation alive),
    keeping the shapes of tensors."""
    for node in graph.nodes:
        value = node.meta.pop(VALUE, None)
        if isinstance(value, Tensor):
            node.meta[SHAPE_META] = tuple(value.shape)


__all__ = ["SUPPORTED", "prepare", "reference_scores"]
