"""Max pooling with PyTorch's values, faster on the CPU.

PyTorch's CPU kernel for 2-D max pooling of contiguous (NCHW) inputs is about ten times slower
than its channels-last kernel and than the elementwise maximum of a window's strided slices. A
maximum has no rounding, so both forms below give the model's values bit for bit:

- :class:`SlicedMaxPool2d`: the maximum of strided slices, output in the input's layout (for
  forward passes without gradients: its gradient would split ties, the pooling's picks one);
- :class:`ChannelsLastMaxPool2d`: the pooling on a channels-last copy of the input; the same
  winner in every window (the first maximum), so the same gradient too.

Both are used on private copies of a model, never on the user's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ChannelsLastMaxPool2d(nn.MaxPool2d):
    """:class:`torch.nn.MaxPool2d` run on a channels-last copy of a CPU input with several
    channels (output channels-last); elsewhere the plain pooling."""

    #: The type named in messages to the user (it stands in for the model's own pooling).
    shown_as = "MaxPool2d"

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and x.dim() == 4 and x.shape[1] > 1 \
                and not x.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        out: Tensor = super().forward(x)
        return out


class SlicedMaxPool2d(nn.Module):
    """2-D max pooling as the elementwise maximum of the window's strided slices: the values of
    ``pool`` (a :class:`torch.nn.MaxPool2d` without ``ceil_mode``, dilation or indices; see
    :func:`sliceable`), in the input's memory layout; off the CPU the plain pooling."""

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.kernel = _pair(pool.kernel_size)
        self.stride = _pair(pool.stride if pool.stride is not None else pool.kernel_size)
        self.padding = _pair(pool.padding)

    def forward(self, x: Tensor) -> Tensor:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        if x.device.type != "cpu" or not x.is_floating_point() or x.dim() not in (3, 4):
            return F.max_pool2d(x, self.kernel, self.stride, self.padding)
        layout = torch.channels_last if x.dim() == 4 and not x.is_contiguous() \
            and x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph), value=-torch.inf)
        rows = (x.shape[-2] - kh) // sh + 1
        cols = (x.shape[-1] - kw) // sw + 1
        # over the window's rows first (whole rows: contiguous, vectorised), then its columns
        tall = _max_of([x[..., i:i + sh * (rows - 1) + 1:sh, :] for i in range(kh)])
        out = _max_of([tall[..., j:j + sw * (cols - 1) + 1:sw] for j in range(kw)])
        return out.contiguous(memory_format=layout)


def sliceable(module: nn.Module) -> bool:
    """Whether :class:`SlicedMaxPool2d` computes ``module`` (a plain 2-D max pooling)."""
    return (type(module) is nn.MaxPool2d and not module.ceil_mode and not module.return_indices
            and _pair(module.dilation) == (1, 1))


def swap_pools(model: nn.Module, make: Callable[[nn.MaxPool2d], nn.Module],
               which: Callable[[nn.Module], bool] = sliceable) -> bool:
    """Replace, in place, every submodule of ``model`` that ``which`` accepts with
    ``make(module)``; whether any was replaced. For copies of a model only."""
    swapped = False
    for name, module in list(model.named_modules()):
        if name and isinstance(module, nn.MaxPool2d) and which(module):
            parent, _, leaf = name.rpartition(".")
            model.get_submodule(parent).register_module(leaf, make(module))
            swapped = True
    return swapped


def channels_last_pool(pool: nn.MaxPool2d) -> ChannelsLastMaxPool2d:
    """The :class:`ChannelsLastMaxPool2d` with ``pool``'s settings."""
    return ChannelsLastMaxPool2d(pool.kernel_size, pool.stride, pool.padding, pool.dilation,
                                 pool.return_indices, pool.ceil_mode)


def _max_of(parts: list[Tensor]) -> Tensor:
    out = parts[0]
    for part in parts[1:]:
        out = torch.maximum(out, part)
    return out


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
