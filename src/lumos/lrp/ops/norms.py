"""LayerNorm, GroupNorm and RMSNorm in a prepared model, and the identity rule of AttnLRP.

A normalisation layer computes ``y = (x - mean(x)) / std(x) * w + b`` over some dimensions
(RMSNorm: no centring, ``std`` the root mean square; ``l2``: ``y = x / max(||x||, eps)``, the
``F.normalize`` of cosine attention in Swin v2). Preparation turns every such layer,
module or functional (``F.layer_norm``, ``F.group_norm``, ``F.rms_norm``), into one
:class:`Normalization` module. Its LRP rule :func:`StdConstant` (AttnLRP's identity rule) treats
``1 / std`` as a constant: the centring and the affine part are linear and relevance follows their
gradient, so with ``b = 0`` the layer conserves relevance. The ``Gradient`` rule keeps the full
gradient through ``std`` instead.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from lumos.lrp.capture.graph import PrepGraph, node_inputs

Kind = Literal["layer", "group", "rms", "l2"]


class Normalization(nn.Module):
    """A LayerNorm (last dimensions), GroupNorm (channel groups, dim 1), RMSNorm or L2 norm.

    Parameters
    ----------
    kind : {"layer", "group", "rms", "l2"}
        Which statistics: mean and variance over the last ``len(shape)`` dimensions, over
        channel groups, the root mean square over the last dimensions, or the Euclidean norm
        over the last dimension (``F.normalize(x, dim=-1, eps=eps)``; ``shape`` is its size).
    shape : tuple of int
        The normalised trailing shape (``layer``, ``rms``) or ``(num_groups,)`` (``group``).
    eps : float
        Added to the variance (mean square); for ``l2`` the least norm divided by.
    weight, bias : Tensor or None
        The affine part (per element of ``shape``, or per channel for ``group``).
    """

    weight: Tensor | None
    bias: Tensor | None

    def __init__(self, kind: Kind, shape: tuple[int, ...], eps: float,
                 weight: Tensor | None, bias: Tensor | None, dim: int = -1) -> None:
        super().__init__()
        if kind == "l2" and len(shape) != 1:
            raise ValueError(f"an l2 normalisation is over one dimension, got {shape}")
        self.kind, self.shape, self.eps, self.dim = kind, tuple(shape), float(eps), dim
        for name, value in (("weight", weight), ("bias", bias)):
            self.register_buffer(name, None if value is None else value.detach())

    def _dims(self, x: Tensor) -> tuple[int, ...]:
        return tuple(range(x.dim() - len(self.shape), x.dim()))

    def _affine(self, y: Tensor) -> Tensor:
        if self.kind == "group":
            view = (1, -1) + (1,) * (y.dim() - 2)
            w = None if self.weight is None else self.weight.view(view)
            b = None if self.bias is None else self.bias.view(view)
        else:
            w, b = self.weight, self.bias
        y = y if w is None else y * w
        return y if b is None else y + b

    def normalize(self, x: Tensor, constant_std: bool) -> Tensor:
        """``y`` with ``1 / std`` detached from the autograd graph when ``constant_std``."""
        if self.kind == "group":
            groups = x.reshape(x.shape[0], self.shape[0], -1)
            centred = groups - groups.mean(-1, keepdim=True)
            var = centred.detach().square().mean(-1, keepdim=True) if constant_std else \
                centred.square().mean(-1, keepdim=True)
            return self._affine((centred * torch.rsqrt(var + self.eps)).reshape(x.shape))
        dims = self._dims(x)
        if self.kind == "l2":
            source = x.detach() if constant_std else x
            return x / source.norm(2, self.dim, keepdim=True).clamp_min(self.eps)
        centred = x if self.kind == "rms" else x - x.mean(dims, keepdim=True)
        source = centred.detach() if constant_std else centred
        inv = torch.rsqrt(source.square().mean(dims, keepdim=True) + self.eps)
        return self._affine(centred * inv)

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "layer":
            return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)
        if self.kind == "group":
            return F.group_norm(x, self.shape[0], self.weight, self.bias, self.eps)
        if self.kind == "l2":
            return F.normalize(x, 2.0, self.dim, self.eps)
        return F.rms_norm(x, self.shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        where = f", dim={self.dim}" if self.kind == "l2" else ""
        return f"{self.kind}, shape={self.shape}, eps={self.eps}{where}"


#: The prepared normalisation layers (group for ``layer_map``).
NORMS: tuple[type[nn.Module], ...] = (Normalization,)


# ---- preparation ------------------------------------------------------------------------------
def from_module(module: nn.Module) -> Normalization | None:
    """The :class:`Normalization` standing for a torch.nn normalisation module, else None."""
    if isinstance(module, nn.LayerNorm):
        return Normalization("layer", tuple(module.normalized_shape), module.eps,
                             module.weight, module.bias)
    if isinstance(module, nn.GroupNorm):
        return Normalization("group", (module.num_groups,), module.eps, module.weight,
                             module.bias)
    if isinstance(module, nn.RMSNorm):
        eps = module.eps if module.eps is not None else torch.finfo(torch.float32).eps
        return Normalization("rms", tuple(module.normalized_shape), eps, module.weight, None)
    return None


#: Torch normalisation modules that preparation rewrites into :class:`Normalization`.
NORM_MODULES: tuple[type[nn.Module], ...] = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)


def canonize_norm_module(g: PrepGraph, node: fx.Node) -> None:
    """Replace a call of an ``nn.LayerNorm`` / ``GroupNorm`` / ``RMSNorm`` leaf."""
    target = str(node.target)
    new = from_module(g.modules[target])
    assert new is not None
    del g.modules[target]
    g.replace(node, new, (node.args[0],), name=target)


_ARGS: dict[Any, tuple[Kind, tuple[str, ...]]] = {
    F.layer_norm: ("layer", ("normalized_shape", "weight", "bias", "eps")),
    F.group_norm: ("group", ("num_groups", "weight", "bias", "eps")),
    F.rms_norm: ("rms", ("normalized_shape", "weight", "eps")),
}
_DEFAULT_EPS = {"layer": 1e-5, "group": 1e-5}


def _functional(g: PrepGraph, node: fx.Node) -> None:
    """``F.layer_norm(x, shape, self.weight, self.bias, eps)`` and friends."""
    kind, names = _ARGS[node.target]
    params: dict[str, Any] = dict(zip(names, node.args[1:], strict=False))
    params.update(node.kwargs)
    tensors = {}
    for key in ("weight", "bias"):
        value = params.pop(key, None)
        if value is not None and not (isinstance(value, fx.Node) and value.op == "get_attr"):
            raise g.error(node, f"F.{kind}_norm with {key} computed in the graph",
                          "use parameters of the model as weight and bias")
        tensors[key] = None if value is None else g.attrs[str(value.target)]
    if any(True for _ in node_inputs(params)):
        raise g.error(node, f"F.{kind}_norm with a shape computed in the graph",
                      "normalise over a constant shape")
    raw: Any = params.get("normalized_shape", params.get("num_groups"))
    shape = (raw,) if isinstance(raw, int) else tuple(raw)
    eps = params.get("eps")
    if eps is None:
        eps = _DEFAULT_EPS.get(kind, float(torch.finfo(torch.float32).eps))
    module = Normalization(kind, shape, eps, tensors["weight"], tensors.get("bias"))
    g.replace(node, module, (node.args[0],))


def _normalize(g: PrepGraph, node: fx.Node) -> None:
    """``F.normalize(x, p=2, dim, eps)``: an ``l2`` :class:`Normalization` over ``dim``."""
    params: dict[str, Any] = dict(zip(("p", "dim", "eps"), node.args[1:], strict=False))
    params.update(node.kwargs)
    p, dim, eps = params.get("p", 2.0), params.get("dim", 1), params.get("eps", 1e-12)
    if any(True for _ in node_inputs(params)) or p != 2 or not isinstance(dim, int):
        raise g.error(node, f"F.normalize with p={p}, dim={dim}", "normalise by the Euclidean "
                      "norm (p=2) over one constant dimension")
    size = g.value(node.args[0]).shape[dim]
    g.replace(node, Normalization("l2", (size,), eps, None, None, dim=dim), (node.args[0],))


#: Functional normalisations and their handler (for :mod:`lumos.lrp.canonize`).
FUNCTIONS: dict[Any, Any] = {**dict.fromkeys(_ARGS, _functional), F.normalize: _normalize}

__all__ = ["FUNCTIONS", "NORMS", "NORM_MODULES", "Normalization", "canonize_norm_module",
           "from_module"]
