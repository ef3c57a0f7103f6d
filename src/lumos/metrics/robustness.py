"""Robustness: does the explanation stay put when the input moves a little?

- :func:`infidelity` (Yeh et al. 2019): how badly the attribution predicts the score change
  under random perturbations ``I``: ``E_I[(I . a - (f(x) - f(x - I)))^2]``. Lower is better.
- :func:`max_sensitivity` / :func:`avg_sensitivity` (Yeh et al. 2019): the largest / mean
  relative change ``|a(x + u) - a(x)| / |a(x)|`` under uniform noise ``u``. Lower is better.
- :func:`local_lipschitz_estimate` (Alvarez-Melis & Jaakkola 2018): the largest
  ``|a(x + u) - a(x)| / |u|`` under Gaussian noise ``u``. Lower is better.
- :func:`continuity` (Montavon et al. 2018): the largest ``|a(x') - a(x)|_1 / |x' - x|_2`` over
  horizontal translations ``x'`` of the image. Lower is better.

Draws come from a CPU generator (``generator=``, or ``seed`` for infidelity), the same on every
device; the method is re-run on many perturbed copies at once (``explain_batch`` inputs per
call), which is where the time goes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import TargetLike
from lumos.metrics._common import (
    Score,
    Scorer,
    check_attribution,
    check_positive_int,
    forward_scores,
)
from lumos.metrics._prep import (
    check_positive,
    check_targets,
    explain_fn,
    generator_or_default,
    relevance,
)


def _draw(shape: tuple[int, ...], like: Tensor, seed: int, kind: str,
          generator: torch.Generator | None = None) -> Tensor:
    gen = torch.Generator().manual_seed(seed) if generator is None else generator
    if kind == "normal":
        values = torch.randn(shape, generator=gen, dtype=torch.float64)
    else:
        values = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
    return values.to(device=like.device, dtype=like.dtype)


def infidelity_noise(x: Tensor, n_perturb: int, std: float, seed: int = 0,
                     generator: torch.Generator | None = None) -> Tensor:
    """The Gaussian perturbations :func:`infidelity` uses: ``(n_perturb, *x.shape)``."""
    return _draw((n_perturb, *x.shape), x, seed, "normal", generator) * std


def infidelity(model: nn.Module, inputs: Tensor, attribution: Tensor, target: TargetLike = None,
               *, n_perturb: int = 32, std: float = 0.1, normalize: bool = True,
               score: Score = "logit", seed: int = 0, batch_size: int = 256,
               generator: torch.Generator | None = None) -> Tensor:
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

    seed, generator:
        The perturbations come from ``generator`` when given, else from a generator seeded
        with ``seed``.

    Returns
    -------
    Tensor
        ``(N,)`` infidelity, lower is better.
    """
    x = check_input(inputs)
    attribution = check_attribution(x, attribution).expand_as(x)
    check_positive_int("n_perturb", n_perturb)
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    n = x.shape[0]
    scorer = Scorer(target, n, score)
    noise = infidelity_noise(x, n_perturb, std, seed, generator)
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


Noise = Callable[[], Tensor]


def perturbed_explanations(model: nn.Module, x: Tensor, target: TargetLike, explain: Any,
                           perturb: Noise, n_samples: int, explain_batch: int = 256
                           ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Yield ``(x_k, a_k, changed_k)`` for ``k < n_samples``: ``x_k = perturb()``, its
    explanation, and whether the predicted class changed.

    ``perturb()`` is called once per ``k``, in order. Several ``k`` are explained in one call of
    the method (``explain_batch`` inputs at most).
    """
    run = explain_fn(explain)
    n = x.shape[0]
    block = max(1, explain_batch // n)
    with torch.inference_mode():
        clean = model(x).argmax(1)
    for start in range(0, n_samples, block):
        count = min(block, n_samples - start)
        moved = torch.cat([perturb() for _ in range(count)])
        attribution = run(moved, _tiled(target, n, count))
        with torch.inference_mode():
            changed = model(moved).argmax(1) != clean.repeat(count)
        for k in range(count):
            rows = slice(k * n, (k + 1) * n)
            yield moved[rows], attribution[rows], changed[rows]


def _tiled(target: TargetLike, n: int, count: int) -> TargetLike:
    if target is None or callable(target) or isinstance(target, int):
        return target
    index = check_targets(target, n)
    return index.repeat(count)


def uniform_noise(x: Tensor, low: float, high: float | None,
                  generator: torch.Generator | None) -> Noise:
    """Draws of ``U(-low, low)`` (``high`` None) or ``U(low, high)`` noise shaped like ``x``."""
    gen = generator_or_default(generator)
    lo, hi = (-low, low) if high is None else (low, high)
    if not hi > lo:
        raise ValueError(f"the noise bounds must satisfy low < high, got {lo} and {hi}")

    def draw() -> Tensor:
        u = torch.rand(tuple(x.shape), generator=gen, dtype=torch.float64)
        return (lo + u * (hi - lo)).to(device=x.device, dtype=x.dtype)

    return draw


def gaussian_noise(x: Tensor, mean: float, std: float, generator: torch.Generator | None) -> Noise:
    """Draws of ``N(mean, std^2)`` noise shaped like ``x``."""
    gen = generator_or_default(generator)

    def draw() -> Tensor:
        u = torch.randn(tuple(x.shape), generator=gen, dtype=torch.float64)
        return (mean + std * u).to(device=x.device, dtype=x.dtype)

    return draw


def _reduce_over(values: list[Tensor], changed: list[Tensor], exclude_changed: bool,
                 how: str) -> Tensor:
    v = torch.stack(values, 1)
    if exclude_changed:
        v = torch.where(torch.stack(changed, 1), torch.nan, v)
    if how == "max":
        finite = torch.where(v.isnan(), -torch.inf, v).amax(1)
        return torch.where(v.isnan().all(1), torch.nan, finite)
    return v.nanmean(1)


def _sensitivity(model: nn.Module, inputs: Tensor, attribution: Tensor | None,
                 target: TargetLike, explain: Any, n_samples: int, lower_bound: float,
                 upper_bound: float | None, absolute: bool, normalise: bool,
                 exclude_changed: bool, generator: torch.Generator | None, explain_batch: int,
                 how: str) -> Tensor:
    x = check_input(inputs)
    check_positive_int("n_samples", n_samples)
    base = explain_fn(explain)(x, target) if attribution is None else attribution
    a = relevance(x, base, absolute=absolute, normalise=normalise)
    norm = a.norm(dim=1)
    noise = uniform_noise(x, lower_bound, upper_bound, generator)
    values, changed = [], []
    for _, moved, flip in perturbed_explanations(model, x, target, explain,
                                                 lambda: x + noise(), n_samples, explain_batch):
        b = relevance(x, moved, absolute=absolute, normalise=normalise)
        values.append((b - a).norm(dim=1) / torch.where(norm > 0, norm, torch.nan))
        changed.append(flip.cpu())
    return _reduce_over(values, changed, exclude_changed, how).to(x.device)


def max_sensitivity(model: nn.Module, inputs: Tensor, attribution: Tensor | None = None,
                    target: TargetLike = None, *, explain: Any = None, n_samples: int = 200,
                    lower_bound: float = 0.2, upper_bound: float | None = None,
                    absolute: bool = False, normalise: bool = False,
                    exclude_changed: bool = False, generator: torch.Generator | None = None,
                    explain_batch: int = 256) -> Tensor:
    """Largest relative change of the explanation under uniform input noise.

    ``max_k |a(x + u_k) - a(x)|_2 / |a(x)|_2`` with ``u_k ~ U(-lower_bound, lower_bound)`` per
    entry (``U(lower_bound, upper_bound)`` when ``upper_bound`` is given), ``n_samples`` draws.
    ``explain`` re-explains the noisy inputs (an attributor or ``(inputs, target) ->
    attribution``); ``attribution`` is ``a(x)`` when already computed. ``exclude_changed``
    ignores draws that change the predicted class. NaN for an all-zero ``a(x)``.
    Defaults as in Quantus (200 draws, bound 0.2, no abs, no normalisation). Lower is better.
    """
    return _sensitivity(model, inputs, attribution, target, explain, n_samples, lower_bound,
                        upper_bound, absolute, normalise, exclude_changed, generator,
                        explain_batch, "max")


def avg_sensitivity(model: nn.Module, inputs: Tensor, attribution: Tensor | None = None,
                    target: TargetLike = None, *, explain: Any = None, n_samples: int = 200,
                    lower_bound: float = 0.2, upper_bound: float | None = None,
                    absolute: bool = False, normalise: bool = False,
                    exclude_changed: bool = False, generator: torch.Generator | None = None,
                    explain_batch: int = 256) -> Tensor:
    """Mean relative change of the explanation under uniform input noise (as
    :func:`max_sensitivity`, averaged over the draws). Lower is better."""
    return _sensitivity(model, inputs, attribution, target, explain, n_samples, lower_bound,
                        upper_bound, absolute, normalise, exclude_changed, generator,
                        explain_batch, "mean")


def local_lipschitz_estimate(model: nn.Module, inputs: Tensor, attribution: Tensor | None = None,
                             target: TargetLike = None, *, explain: Any = None,
                             n_samples: int = 200, mean: float = 0.0, std: float = 0.1,
                             absolute: bool = False, normalise: bool = True,
                             exclude_changed: bool = False,
                             generator: torch.Generator | None = None,
                             explain_batch: int = 256) -> Tensor:
    """Largest ``|a(x + u) - a(x)|_2 / (|u|_2 + 1e-10)`` over ``n_samples`` Gaussian draws
    ``u ~ N(mean, std^2)`` (Alvarez-Melis & Jaakkola 2018). Defaults as in Quantus (200
    draws, std 0.1, maps normalised per sample). Lower is better."""
    x = check_input(inputs)
    check_positive_int("n_samples", n_samples)
    base = explain_fn(explain)(x, target) if attribution is None else attribution
    a = relevance(x, base, absolute=absolute, normalise=normalise)
    noise = gaussian_noise(x, mean, check_positive("std", std), generator)
    values, changed = [], []
    for moved_x, moved, flip in perturbed_explanations(model, x, target, explain,
                                                       lambda: x + noise(), n_samples,
                                                       explain_batch):
        b = relevance(x, moved, absolute=absolute, normalise=normalise)
        step = (moved_x - x).reshape(x.shape[0], -1).double().norm(dim=1).to(a.device)
        values.append((b - a).norm(dim=1) / (step + 1e-10))
        changed.append(flip.cpu())
    return _reduce_over(values, changed, exclude_changed, "max").to(x.device)


def translate(x: Tensor, shift: int, fill: Tensor) -> Tensor:
    """Images ``(N, C, H, W)`` moved ``shift`` pixels along the width (right for positive),
    the uncovered columns set to ``fill`` ``(N,)``."""
    out = fill.reshape(-1, 1, 1, 1).expand_as(x).clone()
    width = x.shape[3]
    if abs(shift) >= width:
        return out
    if shift >= 0:
        out[..., shift:] = x[..., :width - shift]
    else:
        out[..., :width + shift] = x[..., -shift:]
    return out


def continuity(model: nn.Module, inputs: Tensor, attribution: Tensor | None = None,
               target: TargetLike = None, *, explain: Any = None, n_steps: int = 28,
               absolute: bool = True, normalise: bool = True, exclude_changed: bool = False,
               explain_batch: int = 256) -> Tensor:
    """Largest ``|a(x') - a(x)|_1 / (|x' - x|_2 + 1e-9)`` over horizontal translations ``x'``.

    The translations run from almost the whole width left to the whole width right in
    ``n_steps`` equal steps (step ``(2W + 1) // n_steps`` pixels, as Quantus); uncovered pixels
    take the image's smallest value. The explanation of ``x`` is always recomputed (the given
    ``attribution`` is ignored, as in Quantus). Lower is better.
    """
    x = check_input(inputs)
    del attribution
    if x.dim() != 4:
        raise ValueError(f"continuity needs images (N, C, H, W), got {tuple(x.shape)}")
    check_positive_int("n_steps", n_steps)
    run = explain_fn(explain)
    a = relevance(x, run(x, target), absolute=absolute, normalise=normalise)
    width = x.shape[3]
    dx = (2 * width + 1) // n_steps
    if dx < 1:
        raise ValueError(f"n_steps={n_steps} is more than 2 * width + 1 = {2 * width + 1}")
    fill = x.reshape(x.shape[0], -1).amin(1)
    shifts = [-width + dx * (k + 1) for k in range(n_steps)]
    moves = iter([translate(x, s, fill) for s in shifts])
    values, changed = [], []
    for moved_x, moved, flip in perturbed_explanations(model, x, target, explain,
                                                       lambda: next(moves), n_steps,
                                                       explain_batch):
        b = relevance(x, moved, absolute=absolute, normalise=normalise)
        step = (moved_x - x).reshape(x.shape[0], -1).double().norm(dim=1).to(a.device)
        values.append((b - a).abs().sum(1) / (step + 1e-9))
        changed.append(flip.cpu())
    return _reduce_over(values, changed, exclude_changed, "max").to(x.device)
