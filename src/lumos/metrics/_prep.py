"""What the metric families share: features, prepared relevance, fills, draws, scored variants.

Conventions (the same for every metric in :mod:`lumos.metrics`)
-----------------------------------------------------------------
- A *feature* is one spatial position of an input ``(N, C, *spatial)`` (all channels together)
  or one entry of a flat input ``(N, D)``; its relevance is the attribution summed over channels.
  For one-channel images (MNIST) this is exactly Quantus's feature.
- ``absolute=True`` takes ``|relevance|``; ``normalise=True`` divides each sample's relevance by
  its own largest ``|relevance|`` (Quantus 0.6 divides a whole batch by one maximum, so a
  sample's value there depends on the other samples of its batch).
- A *baseline* is what a removed feature becomes: a number, ``"black"`` (the sample's
  smallest value), ``"white"`` (its largest), ``"mean"`` (its mean) or ``"uniform"`` (a value
  drawn uniformly from ``[0, 1)``, one per sample and perturbation), as in Quantus.
- Randomness comes from a ``torch.Generator`` on the CPU (``generator=``; a fresh one seeded
  with 0 when omitted), so the draws are the same on every device and the global RNG is never
  touched.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import TargetLike
from lumos.metrics._common import (
    ExplainFn,
    Score,
    Scorer,
    as_explain_fn,
    check_attribution,
    forward_scores,
)

Baseline = float | str
BASELINES = ("black", "white", "mean", "uniform")


def pixels(t: Tensor) -> Tensor:
    """View ``(N, C, *spatial)`` as ``(N, C, P)`` and ``(N, D)`` as ``(N, 1, D)``."""
    if t.dim() == 2:
        return t[:, None, :]
    if t.dim() < 2:
        raise ValueError(f"inputs must be (N, D) or (N, C, ...), got shape {tuple(t.shape)}")
    return t.reshape(t.shape[0], t.shape[1], -1)


def spatial_shape(x: Tensor) -> tuple[int, ...]:
    """The feature grid of ``x``: its spatial dims (or ``(D,)`` for flat inputs)."""
    return tuple(x.shape[1:]) if x.dim() == 2 else tuple(x.shape[2:])


def relevance(x: Tensor, attribution: object, *, absolute: bool = False,
              normalise: bool = False) -> Tensor:
    """Per-feature relevance ``(N, P)`` in float64, validated against ``x``.

    The attribution must be finite and shaped like ``x`` (or channel-summed ``(N, 1, ...)``).
    """
    a = check_attribution(x, attribution).detach()
    a = pixels(a).sum(1).double()
    if normalise:
        peak = a.abs().amax(1, keepdim=True)
        a = torch.where(peak > 0, a / peak.clamp_min(torch.finfo(a.dtype).tiny), a)
    return a.abs() if absolute else a


def maps(attribution: Tensor, *, absolute: bool = False, normalise: bool = False) -> Tensor:
    """Per-feature relevance ``(N, P)`` of an attribution alone (no input to check against)."""
    a = check_input(attribution, "attribution")
    if a.dim() < 2:
        raise ValueError(f"attribution must be batched (N, ...), got shape {tuple(a.shape)}")
    return relevance(a, a, absolute=absolute, normalise=normalise)


def generator_or_default(generator: torch.Generator | None) -> torch.Generator:
    """The caller's generator, or a fresh CPU generator seeded with 0."""
    if generator is None:
        return torch.Generator().manual_seed(0)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError("generator must be a CPU torch.Generator (draws are made on the CPU so "
                         "they are the same on every device)")
    return generator


def baseline_values(x: Tensor, baseline: Baseline, shape: tuple[int, ...] = (),
                    generator: torch.Generator | None = None) -> Tensor:
    """The value removed features take, per sample: ``(N, *shape)`` in ``x``'s dtype.

    ``shape`` adds dims for separate draws (``"uniform"`` draws one value per entry; the other
    baselines repeat the sample's value).
    """
    n = x.shape[0]
    flat = x.reshape(n, -1)
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float, str)):
        raise TypeError(f"baseline must be a number or one of {BASELINES}, got "
                        f"{type(baseline).__name__}")
    if isinstance(baseline, (int, float)):
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be finite, got {baseline}")
        value = torch.full((n,), float(baseline), dtype=x.dtype, device=x.device)
    elif baseline == "black":
        value = flat.amin(1)
    elif baseline == "white":
        value = flat.amax(1)
    elif baseline == "mean":
        value = flat.mean(1)
    elif baseline == "uniform":
        gen = generator_or_default(generator)
        drawn = torch.rand((n, *shape), generator=gen, dtype=torch.float64)
        return drawn.to(device=x.device, dtype=x.dtype)
    else:
        raise ValueError(f"baseline must be a number or one of {', '.join(map(repr, BASELINES))}"
                         f"; got {baseline!r}")
    return value.reshape(n, *([1] * len(shape))).expand(n, *shape)


def warn_training(model: nn.Module) -> None:
    """Warn once per call when the model is in training mode (its scores are random)."""
    if model.training:
        warnings.warn("the model is in training mode (dropout, batch statistics): its scores are "
                      "random; call model.eval()", stacklevel=3)


def scores_of(model: nn.Module, x: Tensor, scorer: Scorer, batch_size: int = 256) -> Tensor:
    """``f_t(x)`` per sample, batched, without autograd."""
    rows = torch.arange(x.shape[0], device=x.device)
    return forward_scores(model, lambda chunk: x[chunk], rows, scorer, batch_size)


def score_replaced(model: nn.Module, x: Tensor, index: Tensor, values: Tensor, scorer: Scorer,
                   batch_size: int = 256, clean: Tensor | None = None) -> Tensor:
    """Scores of variants of ``x`` whose features ``index`` take ``values``.

    Parameters
    ----------
    index:
        ``(N, K, S)`` feature indices: variant ``k`` of sample ``i`` sets features
        ``index[i, k]`` (all channels) to ``values[i, k]``.
    values:
        ``(N, K)`` one value per variant.
    clean:
        ``f_t(x)`` per sample when already known. A variant that changes nothing (its features
        already hold the value) is given ``f_t(x)`` without a forward pass.

    Returns
    -------
    Tensor
        ``(N, K)`` float64 scores.
    """
    n, k, _ = index.shape
    px = pixels(x)
    c = px.shape[1]
    values = values.to(x.dtype)
    if clean is None:
        clean = scores_of(model, x, scorer, batch_size)
    out = clean.double()[:, None].expand(n, k).clone()
    held = px.gather(2, index.reshape(n, 1, -1).expand(n, c, -1)).reshape(n, c, k, -1)
    changed = (held != values[:, None, :, None]).any(-1).any(1)
    todo = changed.nonzero()
    if not todo.numel():
        return out
    rows, variants = todo[:, 0], todo[:, 1]

    def build(chunk: slice) -> Tensor:
        r, v = rows[chunk], variants[chunk]
        images = px[r].clone()
        where = index[r, v][:, None, :].expand(-1, c, -1)
        fill = values[r, v][:, None, None].expand(-1, c, where.shape[2])
        images.scatter_(2, where, fill)
        return images.reshape(-1, *x.shape[1:])

    out[rows, variants] = forward_scores(model, build, rows, scorer, batch_size).double()
    return out


def explain_fn(explain: Any) -> ExplainFn:
    """A method as ``(inputs, target) -> attribution`` (detached), with a clear error."""
    if explain is None:
        raise ValueError("this metric re-explains perturbed inputs: pass explain= (an "
                         "attributor such as lumos.IntegratedGradients(model), or a function "
                         "(inputs, target) -> attribution)")
    fn = as_explain_fn(explain)

    def run(x: Tensor, target: Any) -> Tensor:
        return check_attribution(x, fn(x, target)).detach()

    return run


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation per row of ``(N, K)`` tensors, float64; NaN where a row is constant.

    NaN (not 0) because the correlation is undefined there; scipy says the same.
    """
    a, b = a.double(), b.double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    denom = (a.square().sum(1) * b.square().sum(1)).sqrt()
    return (a * b).sum(1) / torch.where(denom > 0, denom, torch.nan)


def spearman_rows(a: Tensor, b: Tensor) -> Tensor:
    """Spearman correlation per row (average ranks for ties), float64; NaN for constant rows."""
    from lumos.metrics.similarity import rank

    return pearson(rank(a.double()), rank(b.double()))


def check_targets(target: TargetLike, n: int) -> Tensor:
    """Class indices ``(N,)`` for metrics that need one class per sample."""
    from lumos.attribution.targets import Target

    resolved = Target(target, n)
    if resolved.index is None:
        raise ValueError("this metric needs class indices as target (an int, a sequence or a "
                         "LongTensor), not None or a callable")
    return resolved.index


def check_positive(name: str, value: float) -> float:
    """``value`` if it is a finite number > 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def make_scorer(target: TargetLike, n: int, score: Score) -> Scorer:
    """A :class:`Scorer` (kept here so the family modules import one place)."""
    return Scorer(target, n, score)


Builder = Callable[[slice], Tensor]
