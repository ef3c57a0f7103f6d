"""How alike two attributions are, per sample, in torch: rank correlation and SSIM.

The model-randomization check compares an explanation of the trained model with one of a
randomized copy; these are the two similarities Adebayo et al. (2018) report.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lumos.attribution.checks import check_same_shape
from lumos.metrics._sort import argsort_rows


def rank(values: Tensor) -> Tensor:
    """Ranks ``0..D-1`` along the last dim of ``(N, D)``, ties sharing their average rank."""
    n, d = values.shape
    order = argsort_rows(values).to(values.device)
    ordered = values.gather(1, order)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = starts.long().cumsum(1) - 1 + torch.arange(n, device=values.device)[:, None] * d
    positions = torch.arange(d, device=values.device, dtype=torch.float64).expand(n, d)
    mean_rank = torch.zeros(n * d, dtype=torch.float64, device=values.device).scatter_reduce_(
        0, group.reshape(-1), positions.reshape(-1), "mean", include_self=False)
    ranks = torch.empty(n, d, dtype=torch.float64, device=values.device)
    return ranks.scatter_(1, order, mean_rank[group])


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation per row of two ``(N, D)`` tensors; 0 where a row is constant."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    denom = (a.square().sum(1) * b.square().sum(1)).sqrt()
    return torch.where(denom > 0, (a * b).sum(1) / denom.clamp_min(1e-300), 0.0)


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation per sample between two attributions of the same shape.

    Tied values (for example the many exact zeros of Gradient x Input on a black background)
    share their average rank, so the result equals :func:`scipy.stats.spearmanr`.
    """
    check_same_shape(a, b, "first attribution", "second attribution")
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return pearson(rank(a), rank(b)).to(a.dtype if a.dtype.is_floating_point else torch.float32)


def _minmax(maps: Tensor) -> Tensor:
    flat = maps.reshape(maps.shape[0], -1)
    low, high = flat.min(1).values, flat.max(1).values
    span = (high - low).clamp_min(1e-12)
    return ((flat - low[:, None]) / span[:, None]).reshape(maps.shape)


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity per sample (Wang et al. 2004) of two attribution maps.

    Maps ``(N, C, H, W)`` are summed over channels and scaled to ``[0, 1]`` each (the
    normalisation Adebayo et al. use), then compared with a Gaussian window (``window`` pixels,
    shrunk to fit small maps) and the standard constants ``(0.01, 0.03)``. 1 means identical.
    """
    check_same_shape(a, b, "first attribution", "second attribution")
    if a.dim() != 4:
        raise ValueError(f"ssim needs attribution maps of shape (N, C, H, W), got "
                         f"{tuple(a.shape)}")
    x, y = _minmax(a.sum(1, keepdim=True)), _minmax(b.sum(1, keepdim=True))
    size = min(window, a.shape[2], a.shape[3])
    offsets = torch.arange(size, device=a.device, dtype=x.dtype) - (size - 1) / 2
    g = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (g[:, None] * g[None, :]) / g.sum() ** 2

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel[None, None])

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return value.mean((1, 2, 3))
