"""Faithfulness by removing regions: selectivity, region perturbation, IROF.

- :func:`selectivity` (Montavon et al. 2018): square patches removed cumulatively, most relevant
  first; the area under the score curve (lower is better: the score should fall fast).
- :func:`region_perturbation` (Samek et al. 2017): the same removal with the score *drop*
  tracked; AOPC, the mean drop (MoRF: higher is better; LeRF: lower is better).
- :func:`irof` (Rieger & Hansen 2020): SLIC superpixels removed cumulatively in order of mean
  relevance; the area over the curve of the score relative to the clean score.

Patches: the image is padded to a multiple of ``patch_size`` split evenly on both sides (as in
Quantus), so border patches are smaller; a patch's relevance is the sum inside it.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import TargetLike
from lumos.metrics._common import Score, check_choice, check_positive_int
from lumos.metrics._prep import (
    Baseline,
    baseline_values,
    make_scorer,
    relevance,
    spatial_shape,
    warn_training,
)
from lumos.metrics.perturbation import perturbation_curve


def centred_patches(spatial: tuple[int, ...], patch: int,
                    device: torch.device | None = None) -> tuple[Tensor, int]:
    """Patch number of every feature (row-major) on a grid padded evenly to a multiple of
    ``patch``, and the number of patches."""
    if len(spatial) != 2:
        raise ValueError(f"patches need images (N, C, H, W); got spatial shape {spatial}")
    ids, counts = [], []
    for size in spatial:
        pad = (-size) % patch
        ids.append((torch.arange(size, device=device) + pad // 2) // patch)
        counts.append(math.ceil(size / patch) if pad == 0 else (size + pad) // patch)
    index = ids[0][:, None] * counts[1] + ids[1][None, :]
    return index.reshape(-1), counts[0] * counts[1]


def _ranked_steps(segment: Tensor, n_segments: int, a: Tensor, descending: bool,
                  mean: bool = False) -> Tensor:
    """Step at which each feature goes: its segment's rank by summed (or mean) relevance."""
    n = a.shape[0]
    sums = a.new_zeros(n, n_segments).scatter_add_(1, segment, a)
    if mean:
        sizes = a.new_zeros(n, n_segments).scatter_add_(1, segment, torch.ones_like(a))
        sums = sums / sizes.clamp_min(1)
    order = torch.sort(sums, dim=1, descending=descending, stable=True).indices
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(n_segments, device=a.device).expand_as(order))
    return rank.gather(1, segment)


def _patch_curve(model: nn.Module, x: Tensor, attribution: Tensor, target: TargetLike,
                 patch_size: int, order: str, baseline: Baseline, score: Score,
                 batch_size: int, limit: int | None = None) -> Tensor:
    """Scores ``(N, K + 1)``: clean, then after each patch removal (at most ``limit``)."""
    x = check_input(x)
    if x.dim() != 4:
        raise ValueError(f"patch metrics need images (N, C, H, W), got {tuple(x.shape)}")
    a = relevance(x, attribution).to(x.device)
    check_choice("order", order, ("morf", "lerf"))
    check_positive_int("patch_size", patch_size)
    if patch_size > min(spatial_shape(x)):
        raise ValueError(f"patch_size={patch_size} is larger than the image {spatial_shape(x)}")
    warn_training(model)
    segment, count = centred_patches(spatial_shape(x), patch_size, x.device)
    segment = segment.expand(x.shape[0], -1)
    step = _ranked_steps(segment, count, a.to(torch.float64), order == "morf")
    steps = count if limit is None else min(count, check_positive_int("regions", limit))
    end = baseline_values(x, baseline, tuple(x.shape[1:]))
    stays = (step >= steps).reshape(x.shape[0], 1, *x.shape[2:])
    end = torch.where(stays, x, end)  # patches past the last step are never removed
    step = step.clamp_max(steps - 1)
    scorer = make_scorer(target, x.shape[0], score)
    return perturbation_curve(model, x, end, step, steps, scorer, batch_size).double()


def selectivity(model: nn.Module, inputs: Tensor, attribution: Tensor,
                target: TargetLike = None, *, patch_size: int = 8, baseline: Baseline = "black",
                score: Score = "softmax", batch_size: int = 256, curve: bool = False) -> Tensor:
    """Area under the score curve while patches are removed, most relevant first.

    ``sum`` of the trapezoids (unit spacing) over the scores after each removal, as Quantus's
    ``get_auc_score``; lower is better. ``curve=True`` returns the ``(N, K)`` scores instead.
    Defaults as in Quantus (8x8 patches, ``"black"``, class probability; the attribution is
    used as given, since the ranking does not depend on a per-sample scale).
    """
    scores = _patch_curve(model, inputs, attribution, target, patch_size, "morf", baseline,
                          score, batch_size)[:, 1:]
    if curve:
        return scores
    return torch.trapezoid(scores, dim=1) if scores.shape[1] > 1 else scores[:, 0] * 0


def region_perturbation(model: nn.Module, inputs: Tensor, attribution: Tensor,
                        target: TargetLike = None, *, patch_size: int = 8,
                        order: Literal["morf", "lerf"] = "morf", regions: int = 100,
                        baseline: Baseline = "black", score: Score = "softmax",
                        batch_size: int = 256, curve: bool = False) -> Tensor:
    """AOPC of region perturbation: the mean score drop over ``regions`` patch removals.

    ``AOPC = 1/(L+1) sum_{k=0..L} (f(x) - f(x^(k)))`` with ``L = min(regions, patches)``
    (Samek et al. 2017), on the class probability by default (as Quantus). MoRF: higher is
    better; LeRF: lower is better. ``curve=True`` returns
    the ``(N, L)`` drops ``f(x) - f(x^(k))``, ``k = 1..L`` (Quantus's per-sample output).
    """
    scores = _patch_curve(model, inputs, attribution, target, patch_size, order, baseline,
                          score, batch_size, regions)
    drops = scores[:, :1] - scores[:, 1:]
    if curve:
        return drops
    return drops.sum(1) / scores.shape[1]


def superpixels(image: Tensor, **slic_options: object) -> Tensor:
    """SLIC superpixel labels ``(H, W)`` (0-based) of one image ``(C, H, W)`` (scikit-image).

    ``slic_options`` go to :func:`skimage.segmentation.slic`; the default is scikit-image's
    (about 100 segments, compactness 10), on the image as ``float64`` channels-last.
    """
    try:
        from skimage.segmentation import slic
    except ImportError as err:  # pragma: no cover - scikit-image ships with lumos[demo]
        raise ImportError("irof needs scikit-image: pip install scikit-image") from err
    pixels_last = np.moveaxis(image.detach().cpu().double().numpy(), 0, -1)
    labels = slic(pixels_last, start_label=0, **slic_options)
    return torch.as_tensor(np.asarray(labels), dtype=torch.long)


def irof(model: nn.Module, inputs: Tensor, attribution: Tensor, target: TargetLike = None, *,
         baseline: Baseline = "mean", segments: Tensor | None = None, score: Score = "softmax",
         batch_size: int = 256, curve: bool = False) -> Tensor:
    """Iterative removal of features: area over the relative score curve (higher is better).

    Each image is cut into SLIC superpixels (or the given ``segments``, ``(N, H, W)`` labels
    ``0..K-1``); they are removed cumulatively (set to ``baseline``, default the image's own
    mean) in order of decreasing *mean* relevance. With ``p_k = f(x^(k)) / f(x)`` for
    ``k = 0..K`` (``p_0 = 1``), IROF is ``1 - trapezoid(p, dx=1/K)``: the area over the curve on
    ``[0, 1]``; ``f`` is the class probability by default (as Quantus). ``curve=True`` returns
    the ``(N, K_max + 1)`` ratios ``p`` (NaN past a sample's
    own ``K``).

    Notes
    -----
    Quantus 0.6's ``IROF`` returns ``K - trapezoid(p_1..p_K, dx=1)``, fills with the mean of the
    whole *batch* as it is at each step, pads every sample to the batch's largest ``K`` (so a
    sample's value depends on the rest of its batch) and calls ``np.trapz``, which numpy 2.4
    removed. lumos's value depends on the sample alone.
    """
    x = check_input(inputs)
    if x.dim() != 4:
        raise ValueError(f"irof needs images (N, C, H, W), got {tuple(x.shape)}")
    a = relevance(x, attribution).to(x.device)
    warn_training(model)
    n = x.shape[0]
    labels = torch.stack([superpixels(img) for img in x]) if segments is None else segments
    labels = _check_segments(labels, x)
    counts = labels.reshape(n, -1).amax(1) + 1
    width = int(counts.max())
    step = _ranked_steps(labels.reshape(n, -1).to(x.device), width, a.double(), True, True)
    end = baseline_values(x, baseline, tuple(x.shape[1:])).clone()
    scorer = make_scorer(target, n, score)
    scores = perturbation_curve(model, x, end, step, width, scorer, batch_size).double()
    ratio = scores / scores[:, :1]
    k = torch.arange(width + 1, device=x.device)
    ratio = torch.where(k[None, :] <= counts.to(x.device)[:, None], ratio, torch.nan)
    if curve:
        return ratio
    filled = torch.nan_to_num(ratio)
    trapezoids = (filled[:, 1:] + filled[:, :-1]) / 2
    inside = k[None, 1:] <= counts.to(x.device)[:, None]
    area = (trapezoids * inside).sum(1) / counts.to(x.device).double()
    return 1 - area


def _check_segments(labels: Tensor, x: Tensor) -> Tensor:
    if not isinstance(labels, Tensor) or labels.dtype.is_floating_point \
            or labels.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"segments must be an integer tensor of shape "
                         f"{(x.shape[0], *x.shape[2:])} (labels per pixel)")
    flat = labels.reshape(labels.shape[0], -1).long()
    if bool((flat < 0).any()):
        raise ValueError("segment labels must be >= 0")
    few = (flat.amax(1) < 1).nonzero()[:, 0].tolist()
    if few:
        raise ValueError(f"irof needs at least two segments per image; samples {few[:10]} have "
                         f"one")
    return labels.long().cpu()
