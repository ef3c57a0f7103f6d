"""Modules that stand in for functional operations in a prepared model.

:func:`lumos.lrp.capture.prepare.prepare` rewrites a traced model so that every operation that
computes on activations is a module call; the module's type tells the LRP engine which rule applies.
Standard ``torch.nn`` types cover layers, activations and pooling. The few operations that have no
``torch.nn`` module of their own (sums and differences of branches, concatenation, pure
rearrangements, means over dimensions, a BatchNorm that cannot be folded, resampling) get the
small modules below; element-wise products get :class:`~lumos.lrp.ops.products.Product`.

Every module here computes exactly what the replaced operation computed, so the prepared model
gives the same outputs as the original.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lumos.lrp.ops.products import Product


class Sum(nn.Module):
    """Element-wise sum of two or more branches: ``x + y [+ ...]`` (residual connections).

    Relevance is split among the branches in proportion to their contributions.
    """

    def forward(self, *xs: Tensor) -> Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Difference(nn.Module):
    """``x - y`` of two branches: a sum with the second input negated.

    Relevance is split in proportion to the contributions ``x`` and ``-y`` (the Norm rule).
    """

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return x - y


class Resample(nn.Module):
    """``F.interpolate(x, **kwargs)`` (``nn.Upsample``): a fixed linear map of the input.

    Nearest, (bi/tri)linear, bicubic and area resampling each compute every output element as a
    fixed weighted sum of input elements, so LRP explains it as a layer without parameters to
    modify (the Norm rule: the epsilon rule on that linear map).

    Parameters
    ----------
    **kwargs
        The constant arguments of ``F.interpolate`` (``size``, ``scale_factor``, ``mode``, ...).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.kwargs.items() if v is not None)


class Concat(nn.Module):
    """Concatenation of branches along ``dim`` (``torch.cat``); relevance is split back by slices.

    Parameters
    ----------
    dim : int
        The dimension to concatenate along, as passed to ``torch.cat``.
    """

    def __init__(self, dim: int = 0) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Stack(Concat):
    """``torch.stack`` of branches along a new dimension ``dim``; relevance is split back by
    index, like :class:`Concat`."""

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.stack(xs, dim=self.dim)


class Assign(Concat):
    """``x[index] = v`` written out of place: ``x`` with the elements at ``index`` copied from
    ``v``. Each output element is a copy of one element of ``x`` or of ``v``, so relevance is
    split back by position, like :class:`Concat`.

    Parameters
    ----------
    index : Any
        The constant index (ints, slices, ``None``, ``...``), as written in the model.
    """

    def __init__(self, index: Any) -> None:
        super().__init__(0)
        self.index = index

    def forward(self, *xs: Tensor) -> Tensor:
        x, v = xs
        y = x.clone()
        y[self.index] = v
        return y

    def extra_repr(self) -> str:
        return f"index={self.index!r}"


class Reshape(nn.Module):
    """An operation that only moves, copies or zero-pads elements and does no arithmetic.

    Covers flatten, view, reshape, squeeze, unsqueeze, permute, transpose, contiguous, slicing,
    pieces of chunk / split / unbind, and zero, reflection, replication or circular padding.
    Each output element is a copy of one input element or a constant zero, so the operation is
    linear and relevance goes back through its vector-Jacobian product (the engine's
    pass-through rule).

    Parameters
    ----------
    fn : callable
        The replaced operation, called as ``fn(x, *args, **kwargs)`` (a function such as
        ``torch.flatten`` or an unbound tensor method such as ``torch.Tensor.view``).
    op : str
        A readable name of the operation, shown in the module's repr and in error messages.

    Notes
    -----
    The operation's extra arguments stay in the graph (they may be computed from shapes, as in
    ``x.view(x.size(0), -1)``) and reach :meth:`forward` as ``*args`` and ``**kwargs``.
    """

    def __init__(self, fn: Callable[..., Tensor], op: str) -> None:
        super().__init__()
        self.fn = fn
        self.op = op

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if self.fn is Tensor.view and not x.is_contiguous():  # channels-last activations
            x = x.contiguous()
        return self.fn(x, *args, **kwargs)

    def extra_repr(self) -> str:
        return self.op


class Mean(nn.Module):
    """Mean over dimensions, ``x.mean(dims, keepdim)``: a global average pool written functionally.

    Parameters
    ----------
    dims : int or sequence of int or None
        The reduced dimensions; ``None`` reduces all of them.
    keepdim : bool
        Whether reduced dimensions stay with size one.
    """

    def __init__(self, dims: int | Sequence[int] | None, keepdim: bool = False) -> None:
        super().__init__()
        self.dims: int | tuple[int, ...] | None = (
            tuple(dims) if isinstance(dims, Sequence) else dims)
        self.keepdim = keepdim

    def forward(self, x: Tensor) -> Tensor:
        if self.dims is None:
            return x.mean()
        return x.mean(self.dims, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, keepdim={self.keepdim}"


class Affine(nn.Module):
    """Per-channel affine map ``y = scale * x + shift`` along dimension 1.

    Stands for a BatchNorm in eval mode that follows no convolution or linear layer it could be
    folded into (DenseNet's pre-activation BatchNorm, a BatchNorm after a concatenation or after a
    layer whose output has other users). It is a diagonal linear layer with a bias, and LRP rules
    treat it as one.

    Parameters
    ----------
    scale, shift : Tensor
        One value per channel (shape ``(C,)``); stored as buffers owned by this module.
    """

    scale: Tensor
    shift: Tensor

    def __init__(self, scale: Tensor, shift: Tensor) -> None:
        super().__init__()
        if scale.dim() != 1 or scale.shape != shift.shape:
            raise ValueError(f"Affine needs scale and shift of one equal shape (C,), got "
                             f"{tuple(scale.shape)} and {tuple(shift.shape)}")
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.scale.view(shape) + self.shift.view(shape)

    def extra_repr(self) -> str:
        return f"channels={self.scale.numel()}"


#: The lumos-specific module types a prepared graph may contain besides ``torch.nn`` ones.
LUMOS_LAYERS: tuple[type[nn.Module], ...] = (Sum, Difference, Concat, Reshape, Mean, Affine,
                                             Resample, Product)

#: Layers with weights whose LRP rule is a z-rule (Epsilon, Gamma, ...); subclasses count.
LINEAR_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

#: Element-wise activations a prepared graph may contain (``nn.ReLU6`` is an ``nn.Hardtanh``).
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.Hardtanh, nn.LeakyReLU, nn.ELU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.GELU,
    nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Mish, nn.PReLU, nn.LogSigmoid, nn.SELU, nn.CELU)

#: Pooling modules a prepared graph may contain.
POOLS: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)

#: Every module type a prepared graph's ``call_module`` nodes may target.
SUPPORTED: tuple[type[nn.Module], ...] = LINEAR_LAYERS + ACTIVATIONS + POOLS + LUMOS_LAYERS
