"""Turn the operations of a traced graph into modules whose type tells the LRP rule.

One table maps each supported function or tensor method to a handler (:mod:`lumos.lrp.ops.handlers`
for activations, pooling, reshapes, dropout and functional layers, :mod:`lumos.lrp.ops.arith` for
sums, differences and products, :mod:`lumos.lrp.capture.batchnorm` for ``F.batch_norm``); one
function checks the modules the tracer kept as leaves (:mod:`lumos.lrp.ops.leaves`). Handlers
rewrite the graph through :class:`PrepGraph`, so the result computes exactly what the original did:
activations become out-of-place activation modules (later readers of an in-place op's input read its
output, as they did), dropout and stochastic depth (eval) disappear, ``x + y`` becomes :class:`Sum`,
``a * b`` a :class:`~lumos.lrp.ops.products.Product`, ``torch.cat`` :class:`Concat`, rearrangements
:class:`Reshape`, ``mean`` :class:`Mean`, ``F.interpolate`` :class:`Resample`, functional pooling
and functional conv/linear their ``torch.nn`` module.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from lumos.lrp.capture.batchnorm import functional_batchnorm
from lumos.lrp.capture.graph import PrepGraph, node_inputs
from lumos.lrp.ops import arith, elementwise, norms, reductions, transposed
from lumos.lrp.ops.attention import ATTENTION_LAYERS, transformer_functions
from lumos.lrp.ops.constants import constant_nodes
from lumos.lrp.ops.handlers import (
    ADVICE,
    Handler,
    assign,
    clamp,
    concat,
    dropout,
    functional_layer,
    hardtanh,
    mean,
    module_op,
    op_name,
    pieces,
    reshape,
    stack,
    stochastic_depth,
)
from lumos.lrp.ops.layers import ACTIVATIONS, LINEAR_LAYERS, LUMOS_LAYERS, POOLS, Resample
from lumos.lrp.ops.layers import SUPPORTED as _LAYERS
from lumos.lrp.ops.leaves import COPY_PADS, check_leaf, module_to_reshape, upsample_to_resample

__all__ = ["FUNCTIONS", "FUNCTIONS_BY_NAME", "SUPPORTED", "canonize_functions",
           "canonize_modules", "op_name"]


def _table() -> dict[Any, Handler]:
    table: dict[Any, Handler] = {}

    def add(targets: tuple[Any, ...], handler: Handler) -> None:
        table.update(dict.fromkeys(targets, handler))

    add((F.relu, torch.relu, torch.relu_, "relu", "relu_"), module_op(nn.ReLU, ("inplace",)))
    add((F.relu6,), module_op(nn.ReLU6, ("inplace",)))
    add((torch.clamp, torch.clip, "clamp", "clip", "clamp_", "clip_"),
        module_op(clamp, ("min", "max")))
    add((F.hardtanh, F.hardtanh_, "hardtanh"),
        module_op(hardtanh, ("min_val", "max_val", "inplace")))
    add((F.leaky_relu, F.leaky_relu_), module_op(nn.LeakyReLU, ("negative_slope", "inplace")))
    add((F.elu, F.elu_), module_op(nn.ELU, ("alpha", "inplace")))
    add((torch.tanh, F.tanh, torch.tanh_, "tanh", "tanh_"), module_op(nn.Tanh, ()))
    add((torch.sigmoid, F.sigmoid, torch.sigmoid_, "sigmoid", "sigmoid_"),
        module_op(nn.Sigmoid, ()))
    add((F.silu,), module_op(nn.SiLU, ("inplace",)))
    add((F.gelu,), module_op(nn.GELU, ("approximate",)))
    add((F.hardswish,), module_op(nn.Hardswish, ("inplace",)))
    add((F.hardsigmoid,), module_op(nn.Hardsigmoid, ("inplace",)))
    add((F.softplus,), module_op(nn.Softplus, ("beta", "threshold")))
    add((F.mish,), module_op(nn.Mish, ("inplace",)))
    _pooling(add)
    add((F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
         F.feature_alpha_dropout, torch.dropout, torch.feature_dropout, torch.alpha_dropout),
        dropout)
    add((F.logsigmoid,), module_op(nn.LogSigmoid, ()))
    add((F.selu, torch.selu), module_op(nn.SELU, ("inplace",)))
    add((F.celu,), module_op(nn.CELU, ("alpha", "inplace")))
    for fn in (torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.permute,
               torch.transpose, torch.swapaxes, torch.swapdims, torch.movedim, torch.narrow,
               torch.unflatten, torch.t, operator.getitem, F.pad, torch.flip, torch.tile,
               torch.select, torch.index_select, F.pixel_shuffle, F.pixel_unshuffle,
               torch.repeat_interleave, torch.broadcast_to, getattr):
        add((fn,), reshape(fn))
    add(("flatten", "view", "reshape", "squeeze", "unsqueeze", "permute", "transpose",
         "contiguous", "swapaxes", "swapdims", "movedim", "narrow", "unflatten", "t", "repeat",
         "expand", "tile", "flip", "select", "index_select", "repeat_interleave", "roll"),
        reshape(None))
    add((torch.stack,), stack)
    add((torch.chunk, torch.split, torch.unbind, "chunk", "split", "unbind"), pieces)
    add((operator.add, operator.iadd, torch.add, "add", "add_"), arith.add)
    add((operator.sub, operator.isub, torch.sub, torch.subtract, "sub", "sub_"), arith.sub)
    add((torch.cat, torch.concat, torch.concatenate), concat)
    add((torch.mean, "mean"), mean)
    add((operator.mul, operator.imul, torch.mul, torch.multiply, "mul", "mul_"), arith.mul)
    add((operator.neg, torch.neg, torch.negative, "neg", "negative"), arith.neg)
    add((operator.truediv, operator.itruediv, torch.div, torch.true_divide, "div", "div_"),
        arith.div)
    add((F.batch_norm,), functional_batchnorm)
    add((F.interpolate, F.upsample, F.upsample_nearest, F.upsample_bilinear),
        module_op(Resample, ("size", "scale_factor", "mode", "align_corners",
                             "recompute_scale_factor", "antialias")))
    conv_args = ("weight", "bias", "stride", "padding", "dilation", "groups")
    add((F.linear,), functional_layer(nn.Linear, ("weight", "bias")))
    add((F.conv1d,), functional_layer(nn.Conv1d, conv_args))
    add((F.conv2d,), functional_layer(nn.Conv2d, conv_args))
    add((F.conv3d,), functional_layer(nn.Conv3d, conv_args))
    return table


def _pooling(add: Callable[[tuple[Any, ...], Handler], None]) -> None:
    max_args = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    avg_args = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                "divisor_override")
    for k in (1, 2, 3):
        add((getattr(F, f"max_pool{k}d"), getattr(torch, f"max_pool{k}d", None)),
            module_op(getattr(nn, f"MaxPool{k}d"), max_args))
        add((getattr(F, f"avg_pool{k}d"),), module_op(getattr(nn, f"AvgPool{k}d"), avg_args))
        add((getattr(F, f"adaptive_avg_pool{k}d"),),
            module_op(getattr(nn, f"AdaptiveAvgPool{k}d"), ("output_size",)))
        add((getattr(F, f"adaptive_max_pool{k}d"),),
            module_op(getattr(nn, f"AdaptiveMaxPool{k}d"), ("output_size", "return_indices")))


#: Operations without a result that computes anything (assertions): dropped.
NO_OPS: frozenset[Any] = frozenset({torch._assert, torch._assert_async})

#: Every module type a prepared graph's ``call_module`` nodes may target.
SUPPORTED: tuple[type[nn.Module], ...] = (
    *_LAYERS, *ATTENTION_LAYERS, *norms.NORMS, elementwise.Power, elementwise.Detached,
    reductions.Summation, reductions.Extremum)

FUNCTIONS: dict[Any, Handler] = _table()
FUNCTIONS.pop(None, None)
#: Functions of other libraries, by qualified name (so that lumos need not import them).
FUNCTIONS_BY_NAME: dict[str, Handler] = {
    "torchvision.ops.stochastic_depth.stochastic_depth": stochastic_depth,
}
FUNCTIONS.update(norms.FUNCTIONS)
FUNCTIONS.update(elementwise.handlers())
FUNCTIONS.update(reductions.handlers())
FUNCTIONS.update(transposed.handlers())
FUNCTIONS.update(transformer_functions(FUNCTIONS))


def canonize_functions(g: PrepGraph) -> None:
    """Rewrite every supported ``call_function`` / ``call_method`` node into a module call."""
    constants = constant_nodes(g)   # computations on parameters alone stay as they are
    for node in list(g.graph.nodes):
        erased = getattr(node, "_erased", False)   # a piece of a chunk already rewritten
        if not erased and node.op == "call_function" and node.target is operator.setitem:
            assign(g, node)   # x[index] = v: returns None, so it reads as a shape below
            continue
        if erased or node.op not in ("call_function", "call_method") or g.is_shape(node) \
                or node in constants or node.target in NO_OPS:
            if not erased and node.target in NO_OPS:
                g.graph.erase_node(node)
            continue
        _canonize_node(g, node)


def _canonize_node(g: PrepGraph, node: fx.Node) -> None:
    if _detached(g, node):
        g.detached.add(node)   # computed only from outputs without relevance: kept plain
        return
    handler = FUNCTIONS.get(node.target) or FUNCTIONS_BY_NAME.get(op_name(node))
    if handler is None:
        raise g.error(node, f"operation {op_name(node)}", ADVICE)
    handler(g, node)


def _addcmul(g: PrepGraph, node: fx.Node) -> None:
    """``torch.addcmul(a, b, c, value=v)`` is ``a + v * b * c``: a product and a sum."""
    a, b, c = node.args[:3]
    value = node.kwargs.get("value", node.args[3] if len(node.args) > 3 else 1)
    product = g.call(operator.mul, (b, c), node)
    scaled = product if value == 1 else g.call(operator.mul, (product, value), node)
    total = g.call(operator.add, (a, scaled), node)
    node.replace_all_uses_with(total)
    g.graph.erase_node(node)
    for new in dict.fromkeys((product, scaled, total)):
        if g.is_live(new) and new not in g.detached:
            _canonize_node(g, new)


def _detached(g: PrepGraph, node: fx.Node) -> bool:
    """Whether every input of ``node`` that depends on the input's data is detached."""
    data = [n for n in node_inputs((node.args, node.kwargs)) if g.is_tensor(n)
            and not g.is_constant(n)]
    return bool(data) and all(n in g.detached for n in data)


FUNCTIONS.update({torch.addcmul: _addcmul, "addcmul": _addcmul})


def canonize_modules(g: PrepGraph) -> None:
    """Check each leaf module: keep supported ones (out-of-place), rewrite or drop the rest."""
    for node in list(g.graph.nodes):
        if node.op != "call_module":
            continue
        module = g.modules[str(node.target)]
        if isinstance(module, (nn.Identity, nn.modules.dropout._DropoutNd)):
            g.bypass(node, node.args[0])
        elif isinstance(module, (nn.Flatten, nn.Unflatten, nn.modules.padding._ConstantPadNd,
                                 *COPY_PADS)):
            module_to_reshape(g, node, module)
        elif isinstance(module, nn.Upsample):
            upsample_to_resample(g, node, module)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue   # folded or made Affine by lumos.lrp.capture.batchnorm
        elif isinstance(module, norms.NORM_MODULES):
            norms.canonize_norm_module(g, node)
        elif not isinstance(module, LINEAR_LAYERS + ACTIVATIONS + POOLS + LUMOS_LAYERS
                            + ATTENTION_LAYERS + norms.NORMS):
            raise g.error(node, f"module {type(module).__name__}", ADVICE)  # a leaf we lack
        else:
            check_leaf(g, node, module)
