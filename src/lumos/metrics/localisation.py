"""Localisation: does the relevance sit where the evidence is? (a ground-truth ``mask`` given)

Every function takes ``attribution`` ``(N, ...)`` and a ``mask`` of where the evidence should
be: bool or 0/1, shaped like the attribution's spatial grid (``(N, H, W)``, ``(N, 1, H, W)`` or
shaped like the attribution, channels then reduced with *any*). An empty mask has no answer:
by default it raises (``empty="raise"``); ``empty="nan"`` gives that sample NaN instead.

- :func:`pointing_game` (Zhang et al. 2018): is the most relevant feature inside the mask?
- :func:`attribution_localisation` (Kohlbrenner et al. 2020): share of positive relevance inside.
- :func:`top_k_intersection` (Theiner et al. 2021): share of the ``k`` most relevant features
  inside.
- :func:`relevance_rank_accuracy` (Arras et al. 2022): share of the ``|mask|`` most relevant
  features inside.
- :func:`relevance_mass_accuracy` (Arras et al. 2022): share of the relevance mass inside.
- :func:`localisation_auc` (Fawcett 2006): ROC AUC of relevance as a detector of the mask.
- :func:`focus` (Arias-Duart et al. 2022): share of positive relevance inside (mosaics: the
  quadrants of the target class, see :func:`quadrant_mask`).

Higher is better for all of them.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lumos.attribution.checks import check_input
from lumos.metrics._common import check_choice, check_positive_int
from lumos.metrics._prep import maps

Empty = Literal["raise", "nan"]


def check_mask(mask: object, attribution: Tensor, empty: Empty = "raise") -> Tensor:
    """The mask as ``(N, P)`` bool over the attribution's features, with one clear error."""
    check_choice("empty", empty, ("raise", "nan"))
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype.is_floating_point and not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("a float mask must hold only 0 and 1 (it marks where the evidence is)")
    n = attribution.shape[0]
    grid = tuple(attribution.shape[2:]) if attribution.dim() >= 3 else tuple(attribution.shape[1:])
    m = mask.bool()
    if m.shape == attribution.shape and attribution.dim() >= 3:
        m = m.any(1)
    elif m.dim() == len(grid) + 2 and m.shape[1] == 1:
        m = m[:, 0]
    if tuple(m.shape) != (n, *grid):
        raise ValueError(f"mask has shape {tuple(mask.shape)}; for an attribution of shape "
                         f"{tuple(attribution.shape)} it must be {(n, *grid)} (or with a channel "
                         f"dim of 1, or shaped like the attribution)")
    m = m.reshape(n, -1).to(attribution.device)
    blank = (~m.any(1)).nonzero()[:, 0].tolist()
    if blank and empty == "raise":
        raise ValueError(f"the mask of samples {blank[:10]} is empty: localisation needs at least "
                         f"one marked feature per sample (pass empty='nan' to skip them)")
    return m


def _finish(value: Tensor, m: Tensor) -> Tensor:
    return torch.where(m.any(1), value, torch.nan)


def _prepared(attribution: Tensor, mask: object, absolute: bool, normalise: bool,
              empty: Empty) -> tuple[Tensor, Tensor]:
    a = check_input(attribution, "attribution")
    m = check_mask(mask, a, empty)
    return maps(a, absolute=absolute, normalise=normalise).to(a.device), m


def pointing_game(attribution: Tensor, mask: Tensor, *, weighted: bool = False,
                  absolute: bool = False, empty: Empty = "raise") -> Tensor:
    """1 where a feature of largest relevance lies inside the mask, else 0.

    Ties for the largest count as a hit when any of them is inside (as Quantus). With
    ``weighted``, a hit scores ``1 - |mask| / P`` (harder for small masks).
    """
    a, m = _prepared(attribution, mask, absolute, False, empty)
    hit = ((a == a.amax(1, keepdim=True)) & m).any(1).double()
    if weighted:
        hit = torch.where(hit > 0, 1 - m.sum(1).double() / m.shape[1], hit)
    return _finish(hit, m)


def attribution_localisation(attribution: Tensor, mask: Tensor, *, weighted: bool = False,
                             positive: bool = False, absolute: bool = True,
                             normalise: bool = True, empty: Empty = "raise") -> Tensor:
    """Relevance inside the mask over the total relevance (Kohlbrenner et al. 2020).

    Defaults as in Quantus: ``|relevance|``; ``positive=True`` keeps only positive relevance.
    ``weighted`` multiplies by ``|mask| / P``. NaN where the ratio exceeds 1 (possible only
    with signed relevance).
    """
    a, m = _prepared(attribution, mask, absolute, normalise, empty)
    if positive:
        a = a.clamp_min(0)
    ratio = (a * m).sum(1) / (a.sum(1) + 1e-9)
    ratio = torch.where(ratio > 1, torch.nan, ratio)
    if weighted:
        ratio = ratio * m.sum(1) / m.shape[1]
    return _finish(ratio, m)


def top_k_intersection(attribution: Tensor, mask: Tensor, *, k: int = 1000,
                       concept_influence: bool = False, absolute: bool = False,
                       empty: Empty = "raise") -> Tensor:
    """Share of the ``k`` most relevant features that lie inside the mask.

    ``concept_influence`` divides by the mask's share of the image (1: as good as chance).
    ``k`` must be below the number of features (Quantus's default 1000 suits 224x224 images).
    """
    a, m = _prepared(attribution, mask, absolute, False, empty)
    check_positive_int("k", k)
    if k >= a.shape[1]:
        raise ValueError(f"k={k} must be smaller than the number of features ({a.shape[1]})")
    top = torch.sort(a, dim=1, descending=True, stable=True).indices[:, :k]
    share = m.gather(1, top).double().mean(1)
    if concept_influence:
        share = share * m.shape[1] / m.sum(1).clamp_min(1)
    return _finish(share, m)


def relevance_rank_accuracy(attribution: Tensor, mask: Tensor, *, absolute: bool = False,
                            empty: Empty = "raise") -> Tensor:
    """Share of the ``K = |mask|`` most relevant features that lie inside the mask."""
    a, m = _prepared(attribution, mask, absolute, False, empty)
    order = torch.sort(a, dim=1, descending=True, stable=True).indices
    size = m.sum(1)
    first = torch.arange(a.shape[1], device=a.device)[None, :] < size[:, None]
    inside = (m.gather(1, order) & first).sum(1).double()
    return _finish(inside / size.clamp_min(1), m)


def relevance_mass_accuracy(attribution: Tensor, mask: Tensor, *, absolute: bool = False,
                            empty: Empty = "raise") -> Tensor:
    """Relevance inside the mask over all relevance (signed unless ``absolute``)."""
    a, m = _prepared(attribution, mask, absolute, False, empty)
    return _finish((a * m).sum(1) / a.sum(1), m)


def localisation_auc(attribution: Tensor, mask: Tensor, *, absolute: bool = False,
                     empty: Empty = "raise") -> Tensor:
    """Area under the ROC curve of relevance as a score for "inside the mask".

    The probability that a random feature inside the mask has more relevance than a random one
    outside, ties counting half (the Mann-Whitney statistic; equal to scikit-learn's
    ``roc_auc_score``). NaN when the mask covers every feature.
    """
    from lumos.metrics.similarity import rank

    a, m = _prepared(attribution, mask, absolute, False, empty)
    ranks = rank(a.double()) + 1
    pos = m.sum(1).double()
    neg = m.shape[1] - pos
    u = (ranks * m).sum(1) - pos * (pos + 1) / 2
    auc = u / (pos * neg)
    return _finish(torch.where(neg > 0, auc, torch.nan), m)


def focus(attribution: Tensor, mask: Tensor, *, absolute: bool = False,
          empty: Empty = "raise") -> Tensor:
    """Positive relevance inside the mask over all positive relevance (Arias-Duart et al.)."""
    a, m = _prepared(attribution, mask, absolute, False, empty)
    a = a.clamp_min(0)
    return _finish((a * m).sum(1) / (a.sum(1) + 1e-9), m)


def quadrant_mask(quadrants: Tensor, height: int, width: int) -> Tensor:
    """``(N, H, W)`` mask of the mosaic quadrants flagged in ``quadrants`` ``(N, 4)``.

    Order: top-left, top-right, bottom-left, bottom-right (Focus's 2x2 mosaics; the split is at
    ``H // 2`` and ``W // 2``).
    """
    q = torch.as_tensor(quadrants).bool()
    if q.dim() != 2 or q.shape[1] != 4:
        raise ValueError(f"quadrants must have shape (N, 4), got {tuple(q.shape)}")
    out = torch.zeros(q.shape[0], height, width, dtype=torch.bool)
    h, w = height // 2, width // 2
    for k, (rows, cols) in enumerate([(slice(0, h), slice(0, w)), (slice(0, h), slice(w, None)),
                                      (slice(h, None), slice(0, w)),
                                      (slice(h, None), slice(w, None))]):
        out[:, rows, cols] = q[:, k, None, None]
    return out
