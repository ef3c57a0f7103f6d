"""Turn functional operations in a traced graph into modules whose type tells the LRP rule.

One table maps each supported function or tensor method to a handler; one function handles the
modules the tracer kept as leaves. Handlers rewrite the graph through :class:`PrepGraph`, so the
result computes exactly what the original did: activations become out-of-place activation modules
(later readers of an in-place op's input read its output, as they did), dropout disappears,
``x + y`` becomes :class:`Sum`, ``torch.cat`` :class:`Concat`, rearrangements :class:`Reshape`,
``mean`` :class:`Mean`, functional pooling and functional conv/linear their ``torch.nn`` module.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from lumos.lrp import norms
from lumos.lrp.attention import ATTENTION_LAYERS, transformer_functions
from lumos.lrp.constants import constant_nodes
from lumos.lrp.layers import (
    ACTIVATIONS,
    LINEAR_LAYERS,
    LUMOS_LAYERS,
    POOLS,
    Concat,
    Mean,
    Reshape,
    Sum,
)
from lumos.lrp.prepgraph import PrepGraph, node_inputs

Handler = Callable[[PrepGraph, fx.Node], None]

_ADVICE = ("rewrite it with supported layers (Linear, Conv, activations, pooling, sums, cat, "
           "reshapes, mean, BatchNorm), or move it out of the model")


def op_name(node: fx.Node) -> str:
    """A readable name of a node's operation, e.g. ``torch.nn.functional.relu``."""
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    target = node.target
    module = getattr(target, "__module__", None) or "torch"
    return f"{module.lstrip('_')}.{getattr(target, '__name__', target)}"


def _bind(g: PrepGraph, node: fx.Node, names: tuple[str, ...]) -> dict[str, Any]:
    """Constant arguments after the input, by name; raise when one is computed in the graph."""
    params = dict(zip(names, node.args[1:], strict=False))
    params.update(node.kwargs)
    if any(True for _ in node_inputs(params)):
        raise g.error(node, f"{op_name(node)} with arguments computed in the graph",
                      "pass constant arguments (numbers, tuples), or use the matching "
                      "torch.nn module in __init__")
    return params


def _is_inplace(node: fx.Node, params: dict[str, Any]) -> bool:
    name = str(node.target) if node.op == "call_method" else getattr(node.target, "__name__", "")
    return bool(params.pop("inplace", False)) or name.endswith("_")


def _module_op(factory: Callable[..., nn.Module | None], names: tuple[str, ...]) -> Handler:
    """A handler turning ``f(x, *constants)`` into ``factory(**constants)(x)``."""
    def handle(g: PrepGraph, node: fx.Node) -> None:
        params = _bind(g, node, names)
        inplace = _is_inplace(node, params)
        for key in ("stride",):   # pooling: None / [] mean "same as kernel_size"
            if key in params and not params[key]:
                del params[key]
        if params.get("return_indices"):
            raise g.error(node, f"{op_name(node)} with return_indices=True",
                          "drop return_indices; unpooling has no LRP rule")
        module = factory(**params)
        if module is None:
            raise g.error(node, f"{op_name(node)} with {params}", "use a bounded or ReLU form")
        x = node.args[0]
        new = g.replace(node, module, (x,))
        if inplace:
            g.after_inplace(x, new)
    return handle


def _hardtanh(min_val: float = -1.0, max_val: float = 1.0) -> nn.Module:
    if (min_val, max_val) == (0.0, 6.0):
        return nn.ReLU6()
    return nn.Hardtanh(min_val, max_val)


def _clamp(min: float | None = None, max: float | None = None) -> nn.Module | None:
    """``clamp(x, 0)`` is a ReLU, ``clamp(x, 0, 6)`` a ReLU6, ``clamp(x, a, b)`` a Hardtanh."""
    if min is None or (max is None and min != 0):
        return None
    return nn.ReLU() if max is None else _hardtanh(min, max)


def _dropout(g: PrepGraph, node: fx.Node) -> None:
    g.bypass(node, node.args[0])


def _reshape(fn: Callable[..., Any] | None) -> Handler:
    """A handler turning an element-moving op into :class:`Reshape` (``fn`` None: a method)."""
    def handle(g: PrepGraph, node: fx.Node) -> None:
        x = node.args[0]
        if not g.is_tensor(x):
            return
        extra = (node.args[1:], node.kwargs)
        if any(g.is_tensor(n) for n in node_inputs(extra)):
            raise g.error(node, f"{op_name(node)} indexed by activations",
                          "index with constants or shapes only")
        if fn is F.pad and _pad_value(node) not in (None, 0, 0.0):
            raise g.error(node, "padding with a non-zero constant",
                          "pad with zeros, or add the constant to the input before the model")
        call = fn if fn is not None else getattr(torch.Tensor, str(node.target))
        name = op_name(node).rsplit(".", 1)[-1]
        g.replace(node, Reshape(call, name), node.args, dict(node.kwargs))
    return handle


def _part(x: torch.Tensor, *args: Any, op: str, index: int, **kwargs: Any) -> torch.Tensor:
    """Piece ``index`` of ``x.<op>(*args, **kwargs)`` (chunk, split, unbind): a selection."""
    piece: torch.Tensor = getattr(x, op)(*args, **kwargs)[index]
    return piece


def _pieces(g: PrepGraph, node: fx.Node) -> None:
    """``a, b = x.chunk(2, 1)`` (ShuffleNet): each piece read becomes its own :class:`Reshape`."""
    x, extra = node.args[0], (node.args[1:], node.kwargs)
    op = str(node.target) if node.op == "call_method" else getattr(node.target, "__name__", "")
    if any(g.is_tensor(n) for n in node_inputs(extra)) or not all(
            u.target is operator.getitem and isinstance(u.args[1], int) for u in node.users):
        raise g.error(node, f"{op_name(node)} whose pieces are not read by constant index",
                      "index the pieces with constants (a, b = x.chunk(2, 1))")
    for user in list(node.users):
        index: Any = user.args[1]
        g.replace(user, Reshape(partial(_part, op=op, index=index), f"{op}[{index}]"),
                  (x, *node.args[1:]), dict(node.kwargs))
    g.graph.erase_node(node)


def _pad_value(node: fx.Node) -> Any:
    mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
    value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value", None)
    return value if mode == "constant" else None


def _sum(g: PrepGraph, node: fx.Node) -> None:
    x, y = node.args[:2]
    alpha = node.args[2] if len(node.args) > 2 else node.kwargs.get("alpha", 1)
    if not g.is_tensor(x) and not g.is_tensor(y):
        return
    if not (g.is_tensor(x) and g.is_tensor(y)):
        raise g.error(node, f"{op_name(node)} of activations and a constant (a bias outside "
                      "any layer)", "move the constant into a layer's bias, or out of the model")
    if alpha != 1:
        raise g.error(node, f"{op_name(node)} with alpha={alpha}", "use alpha=1")
    inplace = node.target in (operator.iadd, "add_")
    new = g.replace(node, Sum(), (x, y))
    if inplace:
        g.after_inplace(x, new)


def _concat(g: PrepGraph, node: fx.Node) -> None:
    xs: Any = node.args[0] if node.args else node.kwargs["tensors"]
    dim: Any = node.args[1] if len(node.args) > 1 else node.kwargs.get(
        "dim", node.kwargs.get("axis", 0))
    if not isinstance(xs, (list, tuple)) or not all(g.is_tensor(x) for x in xs):
        raise g.error(node, f"{op_name(node)} of a sequence computed in the graph",
                      "concatenate an explicit list of tensors")
    g.replace(node, Concat(dim), tuple(xs))


def _mean(g: PrepGraph, node: fx.Node) -> None:
    params = _bind(g, node, ("dim", "keepdim"))
    if params.pop("dtype", None) is not None:
        raise g.error(node, f"{op_name(node)} with a dtype", "cast before taking the mean")
    g.replace(node, Mean(params.get("dim"), bool(params.get("keepdim", False))),
              (node.args[0],))


def _mul(g: PrepGraph, node: fx.Node) -> None:
    """``x * sigmoid(x)`` (Swish written by hand) becomes ``nn.SiLU``; other products fail."""
    x, y = node.args[:2]
    for a, s in ((x, y), (y, x)):
        if (isinstance(s, fx.Node) and s.op == "call_module"
                and isinstance(g.modules[str(s.target)], nn.Sigmoid) and s.args[0] is a):
            g.replace(node, nn.SiLU(), (a,))
            if not s.users:
                g.graph.erase_node(s)
            return
    if g.is_tensor(x) and g.is_tensor(y):
        raise g.error(node, "element-wise product of two activations (gating, attention, "
                      "squeeze-excitation)", "no standard rule splits relevance between two "
                      "factors; explain a model without the gate or attention branch")
    if g.is_tensor(x) or g.is_tensor(y):
        raise g.error(node, f"{op_name(node)} of activations by a constant",
                      "fold the constant into the next layer's weights")


def _functional_layer(kind: type[nn.Module], names: tuple[str, ...]) -> Handler:
    """``F.conv2d(x, self.weight, self.bias, ...)`` becomes an ``nn.Conv2d`` owning those."""
    def handle(g: PrepGraph, node: fx.Node) -> None:
        params: dict[str, Any] = dict(zip(names, node.args[1:], strict=False))
        params.update(node.kwargs)
        weight: Any = params.pop("weight")
        bias: Any = params.pop("bias", None)
        ok = all(isinstance(p, fx.Node) and p.op == "get_attr" for p in (weight, bias)
                 if p is not None)
        if not ok or any(True for _ in node_inputs(params)):
            raise g.error(node, f"{op_name(node)} with weights computed in the graph",
                          "use parameters of the model as weight and bias")
        w = g.attrs[str(weight.target)]
        b = None if bias is None else g.attrs[str(bias.target)]
        layer = _layer_like(kind, w, b, params)
        base = str(weight.target).rpartition(".")[0] or node.name
        g.replace(node, layer, (node.args[0],), name=g.new_name(base))
    return handle


def _layer_like(kind: type[nn.Module], w: torch.Tensor, b: torch.Tensor | None,
                params: dict[str, Any]) -> nn.Module:
    """An ``nn.Linear`` / ``nn.ConvNd`` built on the meta device, then given ``w`` and ``b``."""
    if kind is nn.Linear:
        layer: nn.Module = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device="meta")
    else:
        groups = int(params.get("groups", 1))
        layer = kind(w.shape[1] * groups, w.shape[0], tuple(w.shape[2:]), bias=b is not None,
                     device="meta", **params)
    layer.weight = nn.Parameter(w, requires_grad=w.requires_grad)
    if b is not None:
        layer.bias = nn.Parameter(b, requires_grad=b.requires_grad)
    return layer


def _table() -> dict[Any, Handler]:
    table: dict[Any, Handler] = {}

    def add(targets: tuple[Any, ...], handler: Handler) -> None:
        table.update(dict.fromkeys(targets, handler))

    add((F.relu, torch.relu, torch.relu_, "relu", "relu_"), _module_op(nn.ReLU, ("inplace",)))
    add((F.relu6,), _module_op(nn.ReLU6, ("inplace",)))
    add((torch.clamp, torch.clip, "clamp", "clip", "clamp_", "clip_"),
        _module_op(_clamp, ("min", "max")))
    add((F.hardtanh, F.hardtanh_, "hardtanh"),
        _module_op(_hardtanh, ("min_val", "max_val", "inplace")))
    add((F.leaky_relu, F.leaky_relu_), _module_op(nn.LeakyReLU, ("negative_slope", "inplace")))
    add((F.elu, F.elu_), _module_op(nn.ELU, ("alpha", "inplace")))
    add((torch.tanh, F.tanh, torch.tanh_, "tanh", "tanh_"), _module_op(nn.Tanh, ()))
    add((torch.sigmoid, F.sigmoid, torch.sigmoid_, "sigmoid", "sigmoid_"),
        _module_op(nn.Sigmoid, ()))
    add((F.silu,), _module_op(nn.SiLU, ("inplace",)))
    add((F.gelu,), _module_op(nn.GELU, ("approximate",)))
    add((F.hardswish,), _module_op(nn.Hardswish, ("inplace",)))
    add((F.hardsigmoid,), _module_op(nn.Hardsigmoid, ("inplace",)))
    add((F.softplus,), _module_op(nn.Softplus, ("beta", "threshold")))
    add((F.mish,), _module_op(nn.Mish, ("inplace",)))
    _pooling(add)
    add((F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
         F.feature_alpha_dropout, torch.dropout, torch.feature_dropout, torch.alpha_dropout),
        _dropout)
    for fn in (torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.permute,
               torch.transpose, torch.swapaxes, torch.swapdims, torch.movedim, torch.narrow,
               torch.unflatten, torch.t, operator.getitem, F.pad):
        add((fn,), _reshape(fn))
    add(("flatten", "view", "reshape", "squeeze", "unsqueeze", "permute", "transpose",
         "contiguous", "swapaxes", "swapdims", "movedim", "narrow", "unflatten", "t"),
        _reshape(None))
    add((torch.chunk, torch.split, torch.unbind, "chunk", "split", "unbind"), _pieces)
    add((operator.add, operator.iadd, torch.add, "add", "add_"), _sum)
    add((torch.cat, torch.concat, torch.concatenate), _concat)
    add((torch.mean, "mean"), _mean)
    add((operator.mul, operator.imul, torch.mul, "mul"), _mul)
    conv_args = ("weight", "bias", "stride", "padding", "dilation", "groups")
    add((F.linear,), _functional_layer(nn.Linear, ("weight", "bias")))
    add((F.conv1d,), _functional_layer(nn.Conv1d, conv_args))
    add((F.conv2d,), _functional_layer(nn.Conv2d, conv_args))
    add((F.conv3d,), _functional_layer(nn.Conv3d, conv_args))
    return table


def _pooling(add: Callable[[tuple[Any, ...], Handler], None]) -> None:
    max_args = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    avg_args = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                "divisor_override")
    for k in (1, 2, 3):
        add((getattr(F, f"max_pool{k}d"), getattr(torch, f"max_pool{k}d", None)),
            _module_op(getattr(nn, f"MaxPool{k}d"), max_args))
        add((getattr(F, f"avg_pool{k}d"),), _module_op(getattr(nn, f"AvgPool{k}d"), avg_args))
        add((getattr(F, f"adaptive_avg_pool{k}d"),),
            _module_op(getattr(nn, f"AdaptiveAvgPool{k}d"), ("output_size",)))
        add((getattr(F, f"adaptive_max_pool{k}d"),),
            _module_op(getattr(nn, f"AdaptiveMaxPool{k}d"), ("output_size", "return_indices")))


FUNCTIONS: dict[Any, Handler] = _table()
FUNCTIONS.pop(None, None)
FUNCTIONS.update(norms.FUNCTIONS)
FUNCTIONS.update(transformer_functions(FUNCTIONS))


def canonize_functions(g: PrepGraph) -> None:
    """Rewrite every supported ``call_function`` / ``call_method`` node into a module call."""
    constants = constant_nodes(g)   # computations on parameters alone stay as they are
    for node in list(g.graph.nodes):
        erased = getattr(node, "_erased", False)   # a piece of a chunk already rewritten
        if erased or node.op not in ("call_function", "call_method") or g.is_shape(node) \
                or node in constants:
            continue
        handler = FUNCTIONS.get(node.target)
        if handler is None:
            raise g.error(node, f"operation {op_name(node)}", _ADVICE)
        handler(g, node)


#: Padding modules that copy border elements, with their ``F.pad`` mode.
_COPY_PADS: dict[type[nn.Module], str] = {
    nn.modules.padding._ReflectionPadNd: "reflect",
    nn.modules.padding._ReplicationPadNd: "replicate",
    nn.modules.padding._CircularPadNd: "circular",
}


def canonize_modules(g: PrepGraph) -> None:
    """Check each leaf module: keep supported ones (out-of-place), rewrite or drop the rest."""
    for node in list(g.graph.nodes):
        if node.op != "call_module":
            continue
        module = g.modules[str(node.target)]
        if isinstance(module, (nn.Identity, nn.modules.dropout._DropoutNd)):
            g.bypass(node, node.args[0])
        elif isinstance(module, (nn.Flatten, nn.Unflatten, nn.modules.padding._ConstantPadNd,
                                 *_COPY_PADS)):
            _module_to_reshape(g, node, module)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue   # folded or made Affine by lumos.lrp.fold
        elif isinstance(module, norms.NORM_MODULES):
            norms.canonize_norm_module(g, node)
        elif not isinstance(module, LINEAR_LAYERS + ACTIVATIONS + POOLS + LUMOS_LAYERS
                            + ATTENTION_LAYERS + norms.NORMS):
            raise g.error(node, f"module {type(module).__name__}", _ADVICE)  # a leaf we lack
        else:
            _check_leaf(g, node, module)


def _check_leaf(g: PrepGraph, node: fx.Node, module: Any) -> None:
    if getattr(module, "return_indices", False):
        raise g.error(node, f"{type(module).__name__} with return_indices=True",
                      "drop return_indices; unpooling has no LRP rule")
    if isinstance(module, LINEAR_LAYERS[1:]) and module.padding_mode != "zeros":
        _split_padding(g, node, module)
    if getattr(module, "inplace", False):
        module.inplace = False   # module belongs to the private copy
        g.after_inplace(node.args[0], node)


def _split_padding(g: PrepGraph, node: fx.Node, conv: Any) -> None:
    """A conv with reflect / replicate / circular padding becomes an explicit pad (which only
    copies elements: a :class:`Reshape`) followed by the conv without padding."""
    pad = partial(F.pad, pad=tuple(conv._reversed_padding_repeated_twice),
                  mode=conv.padding_mode)
    target = str(node.target)
    with g.graph.inserting_before(node):
        padded = g.graph.call_module(g.add_module(f"{target}_pad", Reshape(pad, "pad"), target),
                                     (node.args[0],))
    padded.meta = dict(node.meta)
    node.args = (padded,)
    conv.padding = (0,) * len(conv.kernel_size)   # conv belongs to the private copy
    conv.padding_mode = "zeros"


def _module_to_reshape(g: PrepGraph, node: fx.Node, module: Any) -> None:
    fn: Callable[..., Any]
    if isinstance(module, nn.Flatten):
        fn = partial(torch.flatten, start_dim=module.start_dim, end_dim=module.end_dim)
    elif isinstance(module, nn.Unflatten):
        fn = partial(torch.unflatten, dim=module.dim, sizes=module.unflattened_size)
    elif isinstance(module, nn.modules.padding._ConstantPadNd):
        if module.value != 0:
            raise g.error(node, f"{type(module).__name__} with value={module.value}",
                          "pad with zeros")
        fn = partial(F.pad, pad=tuple(module.padding), mode="constant", value=0.0)
    else:
        mode = next(m for kind, m in _COPY_PADS.items() if isinstance(module, kind))
        fn = partial(F.pad, pad=tuple(module.padding), mode=mode)
    target = str(node.target)
    del g.modules[target]
    g.replace(node, Reshape(fn, type(module).__name__), (node.args[0],), name=target)
