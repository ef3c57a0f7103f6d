"""The linear maps that LRP rules modify: Linear, ConvNd (any groups) and per-channel Affine.

Each :class:`LinearOp` knows how to run its layer with replaced parameters (``forward``) and how to
apply the transposed Jacobian of the modified layer to an output-shaped tensor (``transpose``)
without re-running any forward pass, which is what lets the engine evaluate a rule at the cost of
the gradient. Modified parameters are computed once and cached per modifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lumos.lrp.ops.layers import Affine
from lumos.lrp.rules import ParamMod, modify

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, Affine)
# Up to this many (stacked) input channels a convolution's transposed products run as one.
_FEW_CHANNELS = 8


class LinearOp:
    """A weighted layer reduced to ``forward(x, mod)`` and ``transpose(g, mod, x)``.

    Parameters
    ----------
    module : nn.Module
        A ``nn.Linear``, ``nn.Conv1d/2d/3d`` or :class:`~lumos.lrp.ops.layers.Affine` of the
        prepared         model (never the user's).
    """

    def __init__(self, module: nn.Module) -> None:
        if not isinstance(module, WEIGHTED):
            raise TypeError(f"{type(module).__name__} is not a layer with weights")
        self.module = module
        self.weight: Tensor
        self.bias: Tensor | None
        if isinstance(module, Affine):
            self.weight, self.bias = module.scale.detach(), module.shift.detach()
        else:
            self.weight = module.weight.detach()
            self.bias = None if module.bias is None else module.bias.detach()
        self._cache: dict[tuple[str, ParamMod], Tensor] = {}
        self._stacks: dict[tuple[int, ...], tuple[tuple[Tensor, ...], Tensor, Tensor | None]] = {}
        self.pad: tuple[int, ...] | None = None
        self.pad_mode = "constant"
        self.padding: tuple[int, ...] = ()
        if isinstance(module, nn.modules.conv._ConvNd):
            self._conv_padding(module)

    def _conv_padding(self, conv: nn.modules.conv._ConvNd) -> None:
        d = len(conv.kernel_size)
        if isinstance(conv.padding, str):  # 'valid' or 'same': explicit (maybe uneven) padding
            pads: list[int] = []
            for k, dil in zip(reversed(conv.kernel_size), reversed(conv.dilation), strict=True):
                total = dil * (k - 1) if conv.padding == "same" else 0
                pads += [total // 2, total - total // 2]
            self.pad, self.padding = tuple(pads), (0,) * d
        elif conv.padding_mode != "zeros":
            self.pad, self.padding = tuple(conv._reversed_padding_repeated_twice), (0,) * d
            self.pad_mode = conv.padding_mode
        else:
            self.padding = tuple(conv.padding)
        if self.pad is not None and not any(self.pad):
            self.pad = None

    def pre(self, x: Tensor) -> Tensor:
        """Padding done outside the layer (non-zero padding modes, ``padding='same'``)."""
        if self.pad is None:
            return x
        return F.pad(x, self.pad, mode=self.pad_mode)

    def param(self, which: str, mod: ParamMod | None) -> Tensor | None:
        """The weight or bias under ``mod`` (``None`` for a zero bias), cached."""
        base = self.weight if which == "weight" else self.bias
        if base is None or mod is None:
            return None
        if mod == (1.0, 0.0):
            return base
        key = (which, mod)
        if key not in self._cache:
            self._cache[key] = modify(base, mod)
        return self._cache[key]

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The layer on an (already padded) input with the given parameters."""
        m = self.module
        if isinstance(m, Affine):
            shape = (1, -1) + (1,) * (x.dim() - 2)
            out = x * weight.view(shape)
            return out if bias is None else out + bias.view(shape)
        if isinstance(m, nn.Linear):
            return F.linear(x, weight, bias)
        assert isinstance(m, nn.modules.conv._ConvNd)
        conv = (F.conv1d, F.conv2d, F.conv3d)[len(m.kernel_size) - 1]
        return conv(x, weight, bias, m.stride, self.padding, m.dilation, m.groups)

    def transpose(self, g: Tensor, weights: Sequence[Tensor], x: Tensor) -> list[Tensor]:
        """``J_w^T g`` for the layer with each weight ``w``; ``x`` gives the input's shape.

        Convolutions with few input channels (a model's first layer) run all weights as one
        product, stacked along the input channels, and strided ones as a stride-1 convolution
        over the output phases: the library's input gradient is slow for that shape.
        """
        m = self.module
        if isinstance(m, Affine):
            return [g * w.view((1, -1) + (1,) * (g.dim() - 2)) for w in weights]
        if isinstance(m, nn.Linear):
            return [g.matmul(w) for w in weights]
        assert isinstance(m, nn.modules.conv._ConvNd)
        if x.shape[0] != g.shape[0]:
            x = x.expand(g.shape[0], *x.shape[1:])
        if m.groups != 1 or m.in_channels * len(weights) > _FEW_CHANNELS:
            return [self._conv_transpose(g, w, x) for w in weights]
        stacked, phases = self._stacked(weights)
        if phases is None:
            shape = (x.shape[0], stacked.shape[1], *x.shape[2:])
            out = self._conv_transpose(g, stacked, x[:, :1].expand(shape))
        else:
            out = _phase_transpose(g, phases, m.stride[0], self.padding, tuple(x.shape[2:]))
        return list(out.split(m.in_channels, dim=1))

    def _conv_transpose(self, g: Tensor, weight: Tensor, x: Tensor) -> Tensor:
        m = self.module
        assert isinstance(m, nn.modules.conv._ConvNd)
        d = len(m.kernel_size)
        return torch.ops.aten.convolution_backward(
            g, x, weight, None, list(m.stride), list(self.padding), list(m.dilation), False,
            [0] * d, m.groups, [True, False, False])[0]

    def _stacked(self, weights: Sequence[Tensor]) -> tuple[Tensor, Tensor | None]:
        """The weights stacked along the input channels, and their phase form where it pays."""
        key = tuple(id(w) for w in weights)
        hit = self._stacks.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], weights, strict=True)):
            return hit[1], hit[2]
        m = self.module
        assert isinstance(m, nn.modules.conv._ConvNd)
        stacked = torch.cat(list(weights), 1) if len(weights) > 1 else weights[0]
        if stacked.device.type == "cpu" and stacked.dim() == 4:
            # oneDNN's input gradient for a channels-last output gradient (a channels-last
            # layer after it) is several times slower with a contiguous weight
            stacked = stacked.contiguous(memory_format=torch.channels_last)
        strided = len(m.kernel_size) == 2 and m.stride[0] == m.stride[1] > 1
        phases = (_phase_weight(stacked, m.stride[0])
                  if strided and tuple(m.dilation) == (1, 1) else None)
        self._stacks[key] = (tuple(weights), stacked, phases)
        return stacked, phases

    def bias_shape_of(self, bias: Tensor, out: Tensor) -> Tensor:
        """A per-output-channel vector shaped to broadcast against an output tensor."""
        if isinstance(self.module, nn.Linear):
            return bias
        return bias.view((1, -1) + (1,) * (out.dim() - 2))

    def unpad(self, t: Tensor) -> Tensor:
        """The adjoint of :meth:`pre`: maps a padded-input-shaped tensor back to the input."""
        if self.pad is None:
            return t
        pad = self.pad
        shape = list(t.shape)
        for i in range(len(pad) // 2):
            shape[-1 - i] -= pad[2 * i] + pad[2 * i + 1]
        with torch.enable_grad():
            raw = t.new_zeros(shape, requires_grad=True)
            (out,) = torch.autograd.grad(F.pad(raw, pad, mode=self.pad_mode), raw, t)
        return out


def _phase_weight(weight: Tensor, stride: int) -> Tensor:
    """A 2-d convolution weight ``(out, in, kh, kw)`` split into its ``stride**2`` phases.

    Output ``(in * s * s, out, ceil(kh / s), ceil(kw / s))``: kernel taps ``u = s m + r`` of phase
    ``r``, flipped, so that a stride-1 convolution of the output gradient gives each phase of the
    input gradient (see :func:`_phase_transpose`).
    """
    s = stride
    out_ch, in_ch, kh, kw = weight.shape
    mh, mw = -(-kh // s), -(-kw // s)
    taps = F.pad(weight, (0, s * mw - kw, 0, s * mh - kh)).view(out_ch, in_ch, mh, s, mw, s)
    return taps.flip(2, 4).permute(1, 3, 5, 0, 2, 4).reshape(in_ch * s * s, out_ch, mh, mw)\
        .contiguous()


def _phase_transpose(g: Tensor, phases: Tensor, stride: int, padding: tuple[int, ...],
                     size: tuple[int, ...]) -> Tensor:
    """Input gradient of a strided 2-d convolution from its phase weights (same numbers as the
    transposed convolution): each phase is a full stride-1 correlation, then interleaved."""
    mh, mw = phases.shape[2:]
    full = F.pixel_shuffle(F.conv2d(g, phases, None, 1, (mh - 1, mw - 1)), stride)
    ph, pw = padding
    out = full[..., ph:ph + size[0], pw:pw + size[1]]
    missing_h, missing_w = size[0] - out.shape[-2], size[1] - out.shape[-1]
    if missing_h or missing_w:  # rows no kernel tap reaches (output_padding): zero gradient
        out = F.pad(out, (0, missing_w, 0, missing_h))
    return out
