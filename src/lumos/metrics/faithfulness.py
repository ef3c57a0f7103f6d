"""Faithfulness by correlation: does the relevance of features predict what removing them does?

- :func:`faithfulness_correlation` (Bhatt et al. 2020): random subsets of features; Pearson
  correlation between the subset's relevance and the score drop when it is removed.
- :func:`sensitivity_n` (Ancona et al. 2018): the same correlation for subsets of ``n`` features.
- :func:`faithfulness_estimate` (Alvarez-Melis & Jaakkola 2018): each feature (or group) removed
  alone; Pearson correlation between its relevance and the score drop.
- :func:`monotonicity` (Arya et al. 2019): features inserted into a baseline image in order of
  increasing relevance must never lower the score.
- :func:`monotonicity_correlation` (Nguyen & Martinez 2020): Spearman correlation between a
  feature group's relevance and the variance of the score when it is replaced by noise.

Every function returns one value per sample (conventions: :mod:`lumos.metrics._prep`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import TargetLike
from lumos.metrics._common import Score, check_positive_int
from lumos.metrics._prep import (
    Baseline,
    baseline_values,
    generator_or_default,
    make_scorer,
    pearson,
    relevance,
    score_replaced,
    scores_of,
    spearman_rows,
    warn_training,
)
from lumos.metrics.perturbation import perturbation_curve


def random_subsets(n: int, n_features: int, n_runs: int, size: int,
                   generator: torch.Generator | None = None) -> Tensor:
    """``(n, n_runs, size)`` feature indices: for each sample and run, ``size`` distinct features
    drawn uniformly without replacement (CPU generator, so the same on every device)."""
    gen = generator_or_default(generator)
    out = torch.empty(n, n_runs, size, dtype=torch.long)
    step = max(1, (1 << 24) // (n_runs * n_features))  # samples per draw: ~64 MB of keys
    for lo in range(0, n, step):
        keys = torch.rand(min(step, n - lo), n_runs, n_features, generator=gen)
        out[lo:lo + step] = keys.argsort(2)[:, :, :size]
    return out


def _subset_size(size: int | float, n_features: int, name: str) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise TypeError(f"{name} must be an int (features) or a float fraction, got "
                        f"{type(size).__name__}")
    count = size if isinstance(size, int) else round(size * n_features)
    if not 1 <= count < n_features:
        raise ValueError(f"{name}={size!r} gives {count} features; it must be between 1 and "
                         f"{n_features - 1} (the input has {n_features} features)")
    return count


def _subset_correlation(model: nn.Module, x: Tensor, a: Tensor, target: TargetLike,
                        size: int, n_runs: int, baseline: Baseline, score: Score,
                        generator: torch.Generator | None, batch_size: int) -> Tensor:
    n, p = a.shape
    gen = generator_or_default(generator)
    index = random_subsets(n, p, n_runs, size, gen).to(x.device)
    scorer = make_scorer(target, n, score)
    clean = scores_of(model, x, scorer, batch_size)
    values = baseline_values(x, baseline, (n_runs,), gen)
    perturbed = score_replaced(model, x, index, values, scorer, batch_size, clean)
    sums = a.gather(1, index.reshape(n, -1)).reshape(n, n_runs, size).sum(2)
    return pearson(sums, clean.double()[:, None] - perturbed)


def faithfulness_correlation(model: nn.Module, inputs: Tensor, attribution: Tensor,
                             target: TargetLike = None, *, n_runs: int = 100,
                             subset_size: int | float = 224, baseline: Baseline = "black",
                             absolute: bool = False, normalise: bool = True,
                             score: Score = "logit", generator: torch.Generator | None = None,
                             batch_size: int = 256) -> Tensor:
    """Pearson correlation between a random subset's relevance and the score drop it causes.

    For each of ``n_runs`` random subsets ``S`` of ``subset_size`` features (an int, or a
    fraction of the features): ``sum_{i in S} a_i`` against ``f(x) - f(x with S := baseline)``.
    Higher is better (1: relevance predicts the drop exactly). NaN where either side is constant
    (every subset holds only baseline-valued features, say).

    Parameters
    ----------
    model, inputs, attribution, target:
        The classifier (never modified), inputs ``(N, ...)``, their attribution (same shape or
        channel-summed) and the explained class (see :mod:`lumos.attribution.targets`).
    n_runs, subset_size, baseline:
        Number of subsets, their size, what removed features become (Quantus defaults: 100,
        224 features, ``"black"``).
    absolute, normalise:
        Prepare the relevance (defaults as in Quantus: signed, normalised per sample).
    score:
        ``"logit"`` (Quantus's default) or ``"softmax"``.
    generator:
        CPU ``torch.Generator`` for the subsets.
    batch_size:
        Perturbed inputs per forward pass.
    """
    x = check_input(inputs)
    a = relevance(x, attribution, absolute=absolute, normalise=normalise)
    size = _subset_size(subset_size, a.shape[1], "subset_size")
    check_positive_int("n_runs", n_runs)
    warn_training(model)
    return _subset_correlation(model, x, a, target, size, n_runs, baseline, score, generator,
                               batch_size)


def sensitivity_n(model: nn.Module, inputs: Tensor, attribution: Tensor,
                  target: TargetLike = None, *, n: int | float | Sequence[int | float] = 0.1,
                  n_runs: int = 100, baseline: Baseline = "black", absolute: bool = False,
                  normalise: bool = True, score: Score = "logit",
                  generator: torch.Generator | None = None, batch_size: int = 256) -> Tensor:
    """Sensitivity-n: correlation of subset relevance and score drop for subsets of ``n`` features.

    Ancona et al. (2018) call an attribution *sensitive-n* when, for every subset ``S`` of
    ``n`` features, ``sum_{i in S} a_i = f(x) - f(x with S removed)``; the measurement is the
    Pearson correlation of both sides over ``n_runs`` random subsets, per sample. ``n`` is a
    feature count, a fraction of the features, or a sequence of either. Higher is better.

    Returns
    -------
    Tensor
        ``(N,)`` for one ``n``; ``(N, len(n))`` for a sequence.

    Notes
    -----
    Quantus 0.6's ``SensitivityN`` computes something else: it removes features cumulatively in
    order of relevance, correlates *across the samples of the first batch* the drop after ``k``
    steps with the relevance of step ``k`` alone, and returns one value per step. lumos follows
    the paper; it equals Quantus's ``FaithfulnessCorrelation`` with ``subset_size=n``.
    """
    x = check_input(inputs)
    a = relevance(x, attribution, absolute=absolute, normalise=normalise)
    check_positive_int("n_runs", n_runs)
    warn_training(model)
    many = isinstance(n, Sequence)
    sizes = [_subset_size(v, a.shape[1], "n") for v in (n if isinstance(n, Sequence) else [n])]
    if not sizes:
        raise ValueError("n must not be an empty sequence")
    gen = generator_or_default(generator)
    out = [_subset_correlation(model, x, a, target, s, n_runs, baseline, score, gen, batch_size)
           for s in sizes]
    return torch.stack(out, 1) if many else out[0]


def step_groups(order: Tensor, features_in_step: int) -> tuple[Tensor, int]:
    """``(N, K, features_in_step)`` groups of features in the given per-sample order, and ``K``.

    Group ``k`` holds ``order[:, k*s:(k+1)*s]``; a last, shorter group repeats its final feature
    to keep the tensor rectangular (the same feature set twice changes nothing).
    """
    n, p = order.shape
    s = check_positive_int("features_in_step", features_in_step)
    if s > p:
        raise ValueError(f"features_in_step={s} is larger than the number of features ({p})")
    k = math.ceil(p / s)
    pad = k * s - p
    if pad:
        order = torch.cat([order, order[:, -1:].expand(n, pad)], 1)
    return order.reshape(n, k, s), k


def _group_sums(a: Tensor, groups: Tensor, n_features: int) -> Tensor:
    """Relevance of each group, counting a repeated (padding) feature once."""
    n, k, s = groups.shape
    flat = groups.reshape(n, -1)
    position = torch.arange(k * s, device=groups.device).expand(n, -1)
    real = (position < n_features).to(a.dtype)
    return (a.gather(1, flat) * real).reshape(n, k, s).sum(2)


def faithfulness_estimate(model: nn.Module, inputs: Tensor, attribution: Tensor,
                          target: TargetLike = None, *, features_in_step: int = 1,
                          baseline: Baseline = "black", absolute: bool = False,
                          normalise: bool = True, score: Score = "logit",
                          batch_size: int = 256) -> Tensor:
    """Pearson correlation between each feature group's relevance and the drop its removal causes.

    The features are taken in order of decreasing relevance, ``features_in_step`` at a time;
    each group is removed alone (set to ``baseline``) from the clean input. Higher is better.
    Deterministic. Defaults as in Quantus (one feature per step, ``"black"``, normalised).
    """
    x = check_input(inputs)
    a = relevance(x, attribution, absolute=absolute, normalise=normalise)
    warn_training(model)
    order = torch.sort(a, dim=1, descending=True, stable=True).indices.to(x.device)
    groups, k = step_groups(order, features_in_step)
    scorer = make_scorer(target, x.shape[0], score)
    clean = scores_of(model, x, scorer, batch_size)
    values = baseline_values(x, baseline, (k,))
    perturbed = score_replaced(model, x, groups, values, scorer, batch_size, clean)
    return pearson(_group_sums(a.to(x.device), groups, a.shape[1]),
                   clean.double()[:, None] - perturbed)


def monotonicity(model: nn.Module, inputs: Tensor, attribution: Tensor,
                 target: TargetLike = None, *, features_in_step: int = 1,
                 baseline: Baseline = "black", absolute: bool = True, normalise: bool = True,
                 score: Score = "softmax", batch_size: int = 256, curve: bool = False) -> Tensor:
    """Whether inserting features in order of increasing relevance never lowers the score.

    Starts from the baseline image (every feature at ``baseline``) and puts the features of
    the input back ``features_in_step`` at a time, least relevant first (Arya et al. 2019).
    The score is the class probability (``score="softmax"``, as Quantus).
    Returns ``True`` per sample when the score after each insertion is at least the score
    after the one before (as a float tensor of 0/1; higher is better), or with ``curve=True``
    the ``(N, K)`` scores after each insertion.

    Notes
    -----
    Quantus 0.6's ``Monotonicity`` replaces the features of the *baseline* image by the baseline
    value again, so its input never changes and every sample scores ``True``; lumos inserts the
    input's features, as the paper defines.
    """
    x = check_input(inputs)
    a = relevance(x, attribution, absolute=absolute, normalise=normalise)
    warn_training(model)
    order = torch.sort(a, dim=1, stable=True).indices.to(x.device)
    s = check_positive_int("features_in_step", features_in_step)
    k = step_groups(order, s)[1]
    step = torch.empty_like(order).scatter_(
        1, order, (torch.arange(order.shape[1], device=x.device) // s).expand_as(order))
    start = baseline_values(x, baseline, tuple(x.shape[1:])).clone()
    scorer = make_scorer(target, x.shape[0], score)
    scores = perturbation_curve(model, start, x, step, k, scorer, batch_size)[:, 1:].double()
    if curve:
        return scores
    return (scores.diff(dim=1) >= 0).all(1).to(x.dtype if x.dtype.is_floating_point
                                               else torch.float32)


def monotonicity_correlation(model: nn.Module, inputs: Tensor, attribution: Tensor,
                             target: TargetLike = None, *, n_samples: int = 100,
                             features_in_step: int = 1, baseline: Baseline = "uniform",
                             eps: float = 1e-5, absolute: bool = True, normalise: bool = True,
                             score: Score = "softmax", generator: torch.Generator | None = None,
                             batch_size: int = 256) -> Tensor:
    """Spearman correlation between a group's relevance and the score variance it explains.

    For each group of ``features_in_step`` features (in order of increasing relevance), the
    group is set to ``baseline`` ``n_samples`` times (``"uniform"``: a fresh value in
    ``[0, 1)`` per sample and draw) and ``v = mean_k (f(x_k) - f(x))^2 / f(x)^2`` is recorded
    (no division when ``|f(x)| < eps``). Higher is better (Nguyen & Martinez 2020).
    Defaults as in Quantus (100 draws, one feature per group, uniform noise, class
    probability).
    """
    x = check_input(inputs)
    a = relevance(x, attribution, absolute=absolute, normalise=normalise)
    check_positive_int("n_samples", n_samples)
    warn_training(model)
    n = x.shape[0]
    order = torch.sort(a, dim=1, stable=True).indices.to(x.device)
    groups, k = step_groups(order, features_in_step)
    scorer = make_scorer(target, n, score)
    clean = scores_of(model, x, scorer, batch_size).double()
    gen = generator_or_default(generator)
    values = baseline_values(x, baseline, (k, n_samples), gen).reshape(n, -1)
    index = groups[:, :, None, :].expand(-1, -1, n_samples, -1).reshape(n, k * n_samples, -1)
    perturbed = score_replaced(model, x, index, values, scorer, batch_size, clean)
    weight = torch.where(clean.abs() >= eps, 1.0 / clean.square(), torch.ones_like(clean))
    variance = (perturbed.reshape(n, k, n_samples) - clean[:, None, None]).square().mean(2)
    return spearman_rows(_group_sums(a.to(x.device), groups, a.shape[1]),
                         variance * weight[:, None])
