"""What a removed pixel becomes: the reference values that perturbation metrics fill in.

A perturbation metric replaces pixels of ``x`` by the same pixels of a *fill image*. The choice
matters (Samek et al. 2017 discuss it at length): a constant can push the input off the data
distribution, a blurred copy keeps low frequencies (Petsiuk et al. 2018), uniform noise destroys
information without a fixed colour.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: ``0.0`` (any constant) | ``"mean"`` | ``"blur"`` | ``"uniform"`` | a tensor shaped like x.
Fill = float | str | Tensor

FILLS = ("mean", "blur", "uniform")


def fill_image(x: Tensor, fill: Fill, seed: int = 0, blur_sigma: float = 5.0) -> Tensor | float:
    """The reference that removed pixels of ``x`` take.

    Parameters
    ----------
    x:
        Inputs ``(N, ...)``; images are ``(N, C, H, W)``.
    fill:
        A number: that constant (returned as a float, so callers can keep it a scalar).
        ``"mean"``: each sample's per-channel mean. ``"blur"``: a Gaussian blur of each image
        (``blur_sigma`` pixels, kernel ``4 sigma + 1``, reflected borders). ``"uniform"``: noise
        drawn uniformly between each sample's minimum and maximum, seeded by ``seed``.
        A tensor shaped like ``x``: used as is.
    """
    if isinstance(fill, bool):
        raise TypeError("fill must be a number, 'mean', 'blur', 'uniform' or a tensor; got a bool")
    if isinstance(fill, (int, float)):
        if not math.isfinite(fill):
            raise ValueError(f"fill must be finite, got {fill}")
        return float(fill)
    if isinstance(fill, Tensor):
        if fill.shape != x.shape:
            raise ValueError(f"a fill tensor must be shaped like the input {tuple(x.shape)}, "
                             f"got {tuple(fill.shape)}")
        return fill.to(device=x.device, dtype=x.dtype)
    if fill == "mean":
        spatial = tuple(range(2, x.dim())) if x.dim() >= 3 else (1,)
        return x.mean(spatial, keepdim=True).expand_as(x)
    if fill == "blur":
        return gaussian_blur(x, blur_sigma)
    if fill == "uniform":
        gen = torch.Generator(device=x.device).manual_seed(seed)
        flat = x.reshape(x.shape[0], -1)
        low, high = flat.min(1).values, flat.max(1).values
        noise = torch.rand(flat.shape, generator=gen, device=x.device, dtype=x.dtype)
        return (low[:, None] + noise * (high - low)[:, None]).reshape(x.shape)
    raise ValueError(f"fill must be a number, 'mean', 'blur', 'uniform' or a tensor; got {fill!r}")


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Blur images ``(N, C, H, W)`` channel by channel with a separable Gaussian."""
    if x.dim() != 4:
        raise ValueError(f"fill='blur' needs images of shape (N, C, H, W), got {tuple(x.shape)}")
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive, got {sigma}")
    radius = min(int(2 * sigma), (min(x.shape[2:]) - 1))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    out = F.pad(x, (radius, radius, radius, radius), mode="reflect") if radius else x
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
