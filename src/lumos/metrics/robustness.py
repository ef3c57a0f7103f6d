"""Infidelity and max-sensitivity (Yeh et al. 2019, "On the (in)fidelity and sensitivity of
explanations"), batched and seeded.

- Infidelity: how badly the attribution predicts the score change under random perturbations
  ``I``: ``E_I[(I . attribution - (f(x) - f(x - I)))^2]``. Lower is better.
- Max-sensitivity: how much the explanation moves when the input moves a little:
  ``max_{|y - x|_inf <= r} |explain(y) - explain(x)| / |explain(x)|``. Lower is better.

Both draw their perturbations from a CPU generator seeded by ``seed`` (same numbers on every
device, global RNG untouched); the numbers equal Captum's ``infidelity`` and
``sensitivity_max`` given the same perturbations.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import TargetLike
from lumos.metrics._common import (
    ExplainFn,
    Score,
    Scorer,
    check_attribution,
    check_positive_int,
    forward_scores,
)


def _draw(shape: tuple[int, ...], like: Tensor, seed: int, kind: str) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    if kind == "normal":
        values = torch.randn(shape, generator=gen, dtype=torch.float64)
    else:
        values = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
    return values.to(device=like.device, dtype=like.dtype)


def infidelity_noise(x: Tensor, n_perturb: int, std: float, seed: int = 0) -> Tensor:
    """The Gaussian perturbations :func:`infidelity` uses: ``(n_perturb, *x.shape)``."""
    return _draw((n_perturb, *x.shape), x, seed, "normal") * std


def infidelity(model: nn.Module, x: Tensor, attribution: Tensor, target: TargetLike = None,
               *, n_perturb: int = 32, std: float = 0.1, normalize: bool = True,
               score: Score = "logit", seed: int = 0, batch_size: int = 256) -> Tensor:
    """Infidelity per sample under Gaussian perturbations ``I ~ N(0, std^2)``.

    Parameters
    ----------
    n_perturb:
        Perturbations per sample (Monte-Carlo estimate of the expectation).
    std:
        Standard deviation of the perturbation, in input units.
    normalize:
        Rescale the attribution by the optimal ``beta = E[a b] / E[a^2]`` first (Yeh et al.;
        Captum's ``normalize=True``), so the metric ignores the attribution's overall scale.
    score, batch_size:
        As in :func:`lumos.metrics.pixel_flipping`.

    Returns
    -------
    Tensor
        ``(N,)`` infidelity, lower is better.
    """
    x = check_input(x)
    attribution = check_attribution(x, attribution).expand_as(x)
    check_positive_int("n_perturb", n_perturb)
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    n = x.shape[0]
    scorer = Scorer(target, n, score)
    noise = infidelity_noise(x, n_perturb, std, seed)
    rows = torch.arange(n, device=x.device).repeat(n_perturb)
    perturbed = (x[None] - noise).reshape(-1, *x.shape[1:])
    f_x = forward_scores(model, lambda chunk: x[chunk], torch.arange(n, device=x.device), scorer,
                         batch_size)
    f_p = forward_scores(model, lambda chunk: perturbed[chunk], rows, scorer, batch_size)
    predicted = (noise * attribution[None]).reshape(n_perturb, n, -1).sum(2)
    actual = f_x[None] - f_p.reshape(n_perturb, n)
    if normalize:
        beta = (predicted * actual).mean(0) / predicted.square().mean(0).clamp_min(1e-30)
        predicted = predicted * beta[None]
    return (predicted - actual).square().mean(0)


def max_sensitivity(explain: ExplainFn, x: Tensor, target: TargetLike = None, *,
                    radius: float = 0.02, n_perturb: int = 10, seed: int = 0,
                    attribution: Tensor | None = None) -> Tensor:
    """Largest relative change of the explanation under uniform noise in an L-inf ball.

    Parameters
    ----------
    explain:
        ``(inputs, target) -> attribution`` (an attributor's ``attribute`` works via
        ``lambda x, t: ig.attribute(x, target=t)``). Called ``n_perturb + 1`` times on the
        whole batch.
    radius:
        Half-width of the uniform noise, in input units.
    attribution:
        The explanation of ``x`` when already computed (saves one call).

    Returns
    -------
    Tensor
        ``(N,)``: ``max_k |explain(x + u_k) - explain(x)|_F / |explain(x)|_F`` (the
        denominator taken as 1 for an all-zero explanation, as in Captum).
    """
    x = check_input(x)
    check_positive_int("n_perturb", n_perturb)
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    base = explain(x, target) if attribution is None else attribution
    base = check_attribution(x, base).detach()
    norm = base.reshape(x.shape[0], -1).norm(dim=1)
    norm = torch.where(norm == 0, torch.ones_like(norm), norm)
    noise = _draw((n_perturb, *x.shape), x, seed, "uniform") * radius
    worst = torch.zeros_like(norm)
    for k in range(n_perturb):
        moved = check_attribution(x, explain(x + noise[k], target)).detach()
        change = (moved - base).reshape(x.shape[0], -1).norm(dim=1) / norm
        worst = torch.maximum(worst, change)
    return worst
