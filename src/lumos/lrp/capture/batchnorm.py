"""Fold BatchNorm into the preceding layer, or turn it into :class:`Affine`; fold zero padding.

In eval mode a BatchNorm is the per-channel affine map ``y = s * x + (beta - s * mean)`` with
``s = gamma / sqrt(var + eps)``. Right after a convolution or linear layer whose output nothing
else reads, it folds exactly into a new copy of that layer (``W' = s W``, ``b' = s (b - mean) +
beta``), so LRP sees one layer, as Zennit's canonizers arrange by hand. Anywhere else (DenseNet's
pre-activation BatchNorm, after a concatenation, after a layer read by other branches) it becomes
an :class:`Affine` layer. Folding computes in float64 and writes new tensors: the prepared copy
owns its weights and the user's tensors are never written.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from lumos.lrp.capture.graph import PrepGraph
from lumos.lrp.capture.values import MUTATED, VALUE
from lumos.lrp.ops.layers import LINEAR_LAYERS, Affine, Reshape

_BatchNorm = nn.modules.batchnorm._BatchNorm


class FunctionalBatchNorm(_BatchNorm):
    """``F.batch_norm(x, running_mean, running_var, weight, bias, training=False, ...)`` as a
    BatchNorm module of any dimension (timm's ``BatchNormAct2d``), so that it folds like one.

    It owns the tensors it was given (those of the private copy) and exists only during
    preparation: folding turns it into a layer's weights or an
    :class:`~lumos.lrp.ops.layers.Affine`.
    """

    def __init__(self, running_mean: Tensor, running_var: Tensor, weight: Tensor | None,
                 bias: Tensor | None, eps: float) -> None:
        super().__init__(running_mean.numel(), eps, affine=False, device="meta")
        self.running_mean, self.running_var = running_mean, running_var
        self.weight, self.bias = _parameter(weight), _parameter(bias)  # type: ignore[assignment]

    def _check_input_dim(self, input: Tensor) -> None:
        return None


def _parameter(t: Tensor | None) -> nn.Parameter | None:
    if t is None or isinstance(t, nn.Parameter):
        return t
    return nn.Parameter(t, requires_grad=False)


def functional_batchnorm(g: PrepGraph, node: fx.Node) -> None:
    """Turn an eval-mode ``F.batch_norm`` call into a :class:`FunctionalBatchNorm` module."""
    names = ("running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
    params: dict[str, Any] = dict(zip(names, node.args[1:], strict=False))
    params.update(node.kwargs)
    tensors = [params.get(k) for k in names[:4]]
    stats_given = all(isinstance(t, fx.Node) for t in tensors[:2])
    if params.get("training", False) or not stats_given:
        raise g.error(node, "F.batch_norm with batch statistics (training=True or no running "
                      "statistics)", "call model.eval() and track running statistics, so that "
                      "it is a fixed affine map")
    if not all(t is None or (isinstance(t, fx.Node) and t.op == "get_attr") for t in tensors):
        raise g.error(node, "F.batch_norm with statistics or parameters computed in the graph",
                      "use buffers and parameters of the model")
    mean, var, weight, bias = (g.attrs[str(t.target)] if isinstance(t, fx.Node) else None
                               for t in tensors)
    assert mean is not None and var is not None
    bn = FunctionalBatchNorm(mean, var, weight, bias, eps=float(params.get("eps", 1e-5)))
    base = str(tensors[0].target).rpartition(".")[0] or node.name  # type: ignore[union-attr]
    g.replace(node, bn, (node.args[0],), name=g.new_name(base))


def bn_scale_shift(bn: Any, node: fx.Node, g: PrepGraph) -> tuple[Tensor, Tensor]:
    """The per-channel ``(scale, shift)`` of an eval-mode BatchNorm, in float64."""
    mean, var = bn.running_mean, bn.running_var
    if not isinstance(mean, Tensor) or not isinstance(var, Tensor):
        raise g.error(node, f"{type(bn).__name__} without running statistics "
                      "(track_running_stats=False normalises by batch statistics)",
                      "train it with track_running_stats=True so that eval mode is a fixed "
                      "affine map")
    scale = torch.rsqrt(var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    shift = -mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    return scale, shift


def fold_batchnorms(g: PrepGraph) -> None:
    """Fold every BatchNorm into the layer before it where exact, else make it :class:`Affine`."""
    for node in list(g.graph.nodes):
        if node.op != "call_module" or not isinstance(g.modules[str(node.target)], _BatchNorm):
            continue
        bn: Any = g.modules[str(node.target)]
        scale, shift = bn_scale_shift(bn, node, g)
        prev = node.args[0]
        if _foldable(g, prev, bn):
            assert isinstance(prev, fx.Node)
            layer = g.modules[str(prev.target)]
            g.modules[str(prev.target)] = _folded(layer, scale, shift)
            if VALUE in node.meta:   # the folded layer computes the BatchNorm's output
                prev.meta[VALUE] = node.meta[VALUE]
                prev.meta[MUTATED] = node.meta.get(MUTATED, False)   # an in-place activation
            g.bypass(node, prev)
        else:
            dtype = bn.running_mean.dtype
            target = str(node.target)
            del g.modules[target]
            g.replace(node, Affine(scale.to(dtype), shift.to(dtype)), (prev,), name=target)


def _foldable(g: PrepGraph, prev: object, bn: Any) -> bool:
    if not (isinstance(prev, fx.Node) and prev.op == "call_module"):
        return False
    if sum(not g.is_shape(u) for u in prev.users) != 1:   # reads of its shape do not count
        return False
    layer: Any = g.modules[str(prev.target)]
    if not isinstance(layer, LINEAR_LAYERS):
        return False
    out = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
    bn_dims = _dims(bn, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d))
    layer_dims = 1 if isinstance(layer, nn.Linear) else _dims(layer, LINEAR_LAYERS[1:])
    return out == bn.num_features and bn_dims in (0, layer_dims)


def _dims(module: nn.Module, kinds: tuple[type[nn.Module], ...]) -> int:
    """1, 2 or 3 for the first of ``kinds`` (1d, 2d, 3d) that ``module`` is; 0 for none."""
    return next((i + 1 for i, kind in enumerate(kinds) if isinstance(module, kind)), 0)


def _folded(layer: Any, scale: Tensor, shift: Tensor) -> nn.Module:
    """A new copy of ``layer`` followed by ``scale * . + shift``, with its own tensors."""
    w = layer.weight.detach()
    shape = (-1,) + (1,) * (w.dim() - 1)
    bias = layer.bias.detach().double() if layer.bias is not None else 0.0
    new = copy.copy(layer)
    new._parameters = dict(layer._parameters)   # new tensors below; the copy's stay intact
    new.weight = nn.Parameter((w.double() * scale.view(shape)).to(w.dtype), requires_grad=False)
    new.bias = nn.Parameter((bias * scale + shift).to(w.dtype), requires_grad=False)
    return new


def fold_paddings(g: PrepGraph) -> None:
    """Fold a symmetric zero padding into the convolution that alone reads it (one op less)."""
    for node in list(g.graph.nodes):
        pad = _zero_pad_of(g, node)
        users = list(node.users)
        if pad is None or len(users) != 1 or users[0].op != "call_module":
            continue
        conv: Any = g.modules[str(users[0].target)]
        dims = _dims(conv, LINEAR_LAYERS[1:])
        if (dims == 0 or len(pad) != 2 * dims or isinstance(conv.padding, str)
                or conv.padding_mode != "zeros"):
            continue
        per_dim = [pad[2 * i] for i in range(dims)][::-1]   # F.pad lists the last dim first
        if any(pad[2 * i] != pad[2 * i + 1] for i in range(dims)):
            continue
        new = copy.copy(conv)
        new.padding = tuple(p + q for p, q in zip(conv.padding, per_dim, strict=True))
        g.modules[str(users[0].target)] = new
        g.bypass(node, node.args[0])   # users[0] reads the unpadded input now


def _zero_pad_of(g: PrepGraph, node: fx.Node) -> tuple[int, ...] | None:
    """The ``F.pad`` widths of a constant-zero padding node (module or functional), else None."""
    if node.op != "call_module" or not isinstance(g.modules[str(node.target)], Reshape):
        return None
    fn: Any = g.modules[str(node.target)].fn
    if getattr(fn, "func", fn) is not F.pad:
        return None
    kw: dict[str, Any] = dict(getattr(fn, "keywords", {}))
    kw.update(zip(("pad", "mode", "value"), node.args[1:], strict=False))
    kw.update(node.kwargs)
    pad = kw.get("pad")
    if (kw.get("mode", "constant") != "constant" or kw.get("value") not in (None, 0)
            or not isinstance(pad, (tuple, list)) or not all(isinstance(p, int) for p in pad)):
        return None
    return tuple(pad)
