"""The axioms as measurements: IG completeness, LRP conservation, and sparseness.

- Completeness (Sundararajan et al. 2017): ``sum_i IG_i(x) = f(x) - f(x')``; the gap says how
  well the integral was approximated.
- Conservation (Bach et al. 2015): relevance is neither created nor lost from layer to layer;
  :meth:`lumos.LRP.explain` reports the sum per layer and :func:`conservation` turns it into
  gaps relative to the output relevance (bias and epsilon terms absorb some, by design).
- Sparseness (Chalasani et al. 2020): the Gini index of ``|attribution|``, 0 for relevance
  spread evenly, towards 1 for relevance on a few pixels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import Target, TargetLike
from lumos.explanation import Explanation
from lumos.metrics._common import check_attribution


def _sums(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).sum(1)


def _relative(gap: Tensor, scale: Tensor) -> Tensor:
    return gap / scale.abs().clamp_min(torch.finfo(scale.dtype).tiny)


def completeness_error(model: nn.Module, x: Tensor, attribution: Tensor,
                       target: TargetLike = None, baselines: Tensor | float = 0.0,
                       relative: bool = True) -> Tensor:
    """Per-sample completeness gap ``|sum(attribution) - (f(x) - f(x'))|``.

    Parameters
    ----------
    baselines:
        The baseline ``x'`` the attribution integrated from: a number or a tensor shaped like
        ``x`` (or one sample, broadcast).
    relative:
        Divide by ``|f(x) - f(x')|`` (what IG's tolerance refers to).
    """
    x = check_input(x)
    attribution = check_attribution(x, attribution)
    base = torch.as_tensor(baselines, dtype=x.dtype, device=x.device).expand_as(x)
    resolved = Target(target, x.shape[0])
    with torch.inference_mode():
        f = resolved.score(model(torch.cat([x, base])), repeat=2)
    change = f[: x.shape[0]] - f[x.shape[0]:]
    gap = (_sums(attribution) - change).abs()
    return _relative(gap, change) if relative else gap


def conservation(explanation: Explanation, relative: bool = True) -> dict[str, Tensor]:
    """Per-layer conservation gaps of an LRP explanation.

    Returns ``{layer: (N,) tensor}`` in the explanation's order (output to input) with
    ``sum(R_layer) - sum(R_output)``, divided by ``|sum(R_output)|`` when ``relative``. The
    last entry, ``"input"``, is the total gap of the attribution.
    """
    if not isinstance(explanation, Explanation):
        raise TypeError(f"conservation needs an Explanation (from LRP(...).explain), got "
                        f"{type(explanation).__name__}")
    layers = dict(explanation.layers)
    start = layers.get("output", explanation.output)
    layers.setdefault("input", _sums(explanation.attribution))
    if len(layers) < 2 and "output" in layers:
        raise ValueError("the explanation has no per-layer relevance sums; use "
                         "LRP(...).explain(), not attribute()")
    return {name: _relative(value - start, start) if relative else value - start
            for name, value in layers.items()}


def sparseness(attribution: Tensor) -> Tensor:
    """Gini index of ``|attribution|`` per sample (channels summed first for images).

    ``G = sum_i (2i - n - 1) a_(i) / (n sum_i a_(i))`` over the sorted magnitudes
    ``a_(1) <= ... <= a_(n)``; an all-zero attribution gets 0.
    """
    attribution = check_input(attribution, "attribution")
    a = attribution.sum(1) if attribution.dim() >= 3 else attribution
    a = a.reshape(a.shape[0], -1).abs().sort(1).values
    n = a.shape[1]
    i = torch.arange(1, n + 1, device=a.device, dtype=a.dtype)
    total = a.sum(1)
    gini = ((2 * i - n - 1) * a).sum(1) / (n * total.clamp_min(torch.finfo(a.dtype).tiny))
    return torch.where(total > 0, gini, torch.zeros_like(gini))
