"""Complexity: how concentrated is an explanation? (no model needed)

- :func:`sparseness` (Chalasani et al. 2020): the Gini index of ``|relevance|``; higher is
  sparser (better, for an explanation meant to be read).
- :func:`complexity` (Bhatt et al. 2020): the entropy of the share of ``|relevance|`` on each
  feature; lower is better.
- :func:`effective_complexity` (Nguyen & Martinez 2020): how many features have ``|relevance|``
  above ``eps`` (after normalising each map to a largest value of 1); lower is better.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lumos.metrics._common import check_attribution
from lumos.metrics._prep import check_positive, maps


def sparseness(attribution: Tensor, *, normalise: bool = False, eps: float = 0.0) -> Tensor:
    """Gini index of ``|relevance|`` per sample (channels summed first).

    ``G = sum_i (2i - n - 1) a_(i) / (n sum_i a_(i))`` over the sorted magnitudes
    ``a_(1) <= ... <= a_(n)``; an all-zero map gets 0. ``eps`` is added to every magnitude
    first (Quantus adds 1e-7 after normalising the map, which makes the value depend on the
    map's scale; lumos's default adds nothing).
    """
    a = maps(attribution, absolute=True, normalise=normalise)
    if eps:
        a = a + check_positive("eps", eps)
    a = a.sort(1).values
    n = a.shape[1]
    i = torch.arange(1, n + 1, device=a.device, dtype=a.dtype)
    total = a.sum(1)
    gini = ((2 * i - n - 1) * a).sum(1) / (n * total.clamp_min(torch.finfo(a.dtype).tiny))
    return torch.where(total > 0, gini, torch.zeros_like(gini)).to(_dtype(attribution))


def complexity(attribution: Tensor) -> Tensor:
    """Entropy ``-sum_i p_i log p_i`` of ``p_i = |a_i| / sum_j |a_j|`` (natural log).

    0 for relevance on a single feature, ``log P`` for relevance spread evenly; an all-zero map
    has no distribution and raises.
    """
    a = maps(attribution, absolute=True)
    total = a.sum(1, keepdim=True)
    blank = (total[:, 0] == 0).nonzero()[:, 0].tolist()
    if blank:
        raise ValueError(f"complexity is undefined for an all-zero attribution (samples "
                         f"{blank[:10]})")
    p = a / total
    return -(p * torch.log(p + 1e-12)).sum(1).to(_dtype(attribution))


def effective_complexity(attribution: Tensor, *, eps: float = 1e-5,
                         normalise: bool = True) -> Tensor:
    """Number of features whose ``|relevance|`` exceeds ``eps`` (maps normalised per sample)."""
    a = maps(attribution, absolute=True, normalise=normalise)
    return (a > check_positive("eps", eps)).sum(1).to(_dtype(attribution))


def _dtype(attribution: Tensor) -> torch.dtype:
    check_attribution(attribution, attribution)
    return attribution.dtype
