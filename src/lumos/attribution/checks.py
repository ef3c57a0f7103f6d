"""Input checks shared by every attributor and metric: one clear error per problem."""

from __future__ import annotations

import torch
from torch import Tensor


def check_input(x: object, name: str = "inputs") -> Tensor:
    """Return ``x`` if it is a batched, finite, floating-point tensor; raise otherwise."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{name} must have a batch dimension with at least one sample, got "
                         f"shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    # a NaN or infinity makes the sum non-finite; only then (or on overflow) look closer
    if not bool(x.sum().isfinite()) and not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x)).reshape(x.shape[0], -1).any(1).nonzero()[:, 0].tolist()
        raise ValueError(f"{name} contains NaN or infinite values (samples {bad[:10]})")
    return x


def check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Raise when two tensors that must align element-wise do not."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} has shape {tuple(a.shape)} but {name_b} has shape "
                         f"{tuple(b.shape)}; they must match")
