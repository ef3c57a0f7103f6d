"""ROAD: RemOve And Debias (Rong et al., ICML 2022).

Removing pixels by setting them to a constant leaks where they were (the shape of the hole
tells the class). ROAD fills removed pixels by *noisy linear imputation*: each removed pixel
becomes the weighted mean of its 8 neighbours (weight 1/6 for the 4 direct ones, 1/12 for the
diagonals; neighbours that are removed too are solved for jointly), plus Gaussian noise. The
metric is the share of inputs still classified as the target after removing a percentage of the
most (MoRF) or least (LeRF) relevant pixels.

The imputation is a sparse symmetric positive-definite system per image; lumos solves all of
them at once with a preconditioned conjugate gradient in float64 on the inputs' device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import TargetLike
from lumos.metrics._common import check_choice
from lumos.metrics._prep import (
    check_targets,
    generator_or_default,
    relevance,
    warn_training,
)

_KERNEL = ((1 / 12, 1 / 6, 1 / 12), (1 / 6, 0.0, 1 / 6), (1 / 12, 1 / 6, 1 / 12))
PERCENTAGES = tuple(range(1, 100, 2))


def _neighbours(v: Tensor) -> Tensor:
    """Weighted sum of the 8 neighbours of every pixel of ``(B, 1, H, W)`` (zero outside)."""
    kernel = torch.tensor(_KERNEL, dtype=v.dtype, device=v.device)[None, None]
    return F.conv2d(v, kernel, padding=1)


def linear_imputation(x: Tensor, removed: Tensor, tol: float = 1e-12,
                      max_iter: int | None = None) -> Tensor:
    """Fill the ``removed`` pixels of ``x`` by the neighbour mean of the imputed image.

    ``x``: ``(N, C, H, W)``; ``removed``: ``(N, H, W)`` bool. Every removed pixel satisfies
    ``v_i * sum_n w_n = sum_n w_n v_n`` over its in-image neighbours ``n`` (known ones at their
    value). Returns a float64 copy of ``x``.
    """
    n, c, h, w = x.shape
    xs = x.double().reshape(n * c, 1, h, w)
    hole = removed[:, None].expand(n, c, h, w).reshape(n * c, 1, h, w).to(x.device)
    if not bool(hole.any()):
        return xs.reshape(n, c, h, w)
    weight = _neighbours(torch.ones(1, 1, h, w, dtype=torch.float64, device=x.device))
    known = torch.where(hole, 0.0, xs)
    rhs = torch.where(hole, _neighbours(known), 0.0)

    def apply(v: Tensor) -> Tensor:
        return torch.where(hole, weight * v - _neighbours(v), 0.0)

    v = rhs / weight
    r = rhs - apply(v)
    z = r / weight
    p = z.clone()
    rz = (r * z).sum((1, 2, 3), keepdim=True)
    scale = rhs.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-300)
    for _ in range(max_iter or 20 * h * w):
        if bool((r.abs().amax((1, 2, 3), keepdim=True) <= tol * scale).all()):
            break
        ap = apply(p)
        alpha = rz / (p * ap).sum((1, 2, 3), keepdim=True).clamp_min(1e-300)
        v = v + alpha * p
        r = r - alpha * ap
        z = r / weight
        rz_new = (r * z).sum((1, 2, 3), keepdim=True)
        p = z + (rz_new / rz.clamp_min(1e-300)) * p
        rz = rz_new
    return torch.where(hole, v, xs).reshape(n, c, h, w)


def road_noise(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Standard-normal noise of ``shape`` from ``generator`` (one draw per percentage)."""
    return torch.randn(shape, generator=generator, dtype=torch.float64)


def road(model: nn.Module, inputs: Tensor, attribution: Tensor, target: TargetLike, *,
         percentages: Sequence[float] = PERCENTAGES, order: Literal["morf", "lerf"] = "morf",
         noise: float = 0.01, generator: torch.Generator | None = None,
         batch_size: int = 256, curve: bool = False) -> Tensor:
    """Share of the ``percentages`` at which the input is still classified as ``target``.

    For each percentage ``p``, the ``int(P * p / 100)`` most (``"morf"``) or least
    (``"lerf"``) relevant of the ``P`` pixels are imputed (see :func:`linear_imputation`) and
    ``noise`` times standard-normal noise is added to them. Returns the mean of the
    per-percentage hits ``(N,)`` (MoRF: lower is better; LeRF: higher is better), or with
    ``curve=True`` the ``(N, len(percentages))`` hits. Defaults as in Quantus (1, 3, ..., 99
    percent, noise 0.01, MoRF).
    """
    x = check_input(inputs)
    if x.dim() != 4:
        raise ValueError(f"road needs images (N, C, H, W), got {tuple(x.shape)}")
    check_choice("order", order, ("morf", "lerf"))
    if not percentages or any(not 0 <= float(p) <= 100 for p in percentages):
        raise ValueError(f"percentages must be a non-empty sequence of values in [0, 100], "
                         f"got {percentages!r}")
    labels = check_targets(target, x.shape[0]).to(x.device)
    a = relevance(x, attribution).to(x.device)
    warn_training(model)
    gen = generator_or_default(generator)
    n, p_count = a.shape
    ranked = torch.sort(a, dim=1, descending=order == "morf", stable=True).indices
    rank = torch.empty_like(ranked).scatter_(
        1, ranked, torch.arange(p_count, device=x.device).expand_as(ranked))
    hits = []
    for pct in percentages:
        count = int(p_count * float(pct) / 100)
        removed = (rank < count).reshape(n, *x.shape[2:])
        filled = linear_imputation(x, removed)
        jitter = road_noise(tuple(x.shape), gen).to(x.device) * noise
        filled = torch.where(removed[:, None], filled + jitter, filled).to(x.dtype)
        predicted = _predict(model, filled, batch_size)
        hits.append((predicted == labels).double())
    out = torch.stack(hits, 1)
    return out if curve else out.mean(1)


def _predict(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    with torch.inference_mode():
        return torch.cat([model(x[i:i + batch_size]).argmax(1)
                          for i in range(0, x.shape[0], batch_size)])
