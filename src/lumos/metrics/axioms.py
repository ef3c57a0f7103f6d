"""The axioms as measurements: IG completeness, LRP conservation, and sparseness.

- Completeness (Sundararajan et al. 2017): ``sum_i IG_i(x) = f(x) - f(x')``; the gap says how
  well the integral was approximated.
- Conservation (Bach et al. 2015): relevance is neither created nor lost from layer to layer;
  :meth:`lumos.LRP.explain` reports the sum per layer and :func:`conservation` turns it into
  gaps relative to the output relevance (bias and epsilon terms absorb some, by design).
- Non-sensitivity (Nguyen & Martinez 2020): features the model ignores get no relevance, and
  features with no relevance are ignored by the model.
- Input invariance (Kindermans et al. 2019): a constant shift of the input, absorbed by the
  first layer's bias, must not change the explanation.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import Target, TargetLike
from lumos.explanation import Explanation
from lumos.metrics._common import Score, check_attribution, check_positive_int
from lumos.metrics._prep import (
    Baseline,
    baseline_values,
    make_scorer,
    relevance,
    score_replaced,
    scores_of,
    warn_training,
)
from lumos.metrics.complexity import sparseness
from lumos.metrics.faithfulness import step_groups

__all__ = ["completeness", "completeness_error", "conservation", "input_invariance",
           "non_sensitivity", "shift_first_layer", "sparseness"]


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


def completeness(model: nn.Module, inputs: Tensor, attribution: Tensor,
                 target: TargetLike = None, *, baseline: Baseline = "black",
                 rtol: float = 0.01, atol: float = 0.0) -> Tensor:
    """Whether ``sum(attribution) = f(x) - f(x')`` holds per sample, within a tolerance.

    ``x'`` is ``x`` with every feature at ``baseline`` (Quantus's default ``"black"``: the
    sample's smallest value). True (1.0) where ``|sum a - (f(x) - f(x'))| <= atol + rtol
    |f(x) - f(x')|``; higher is better. :func:`completeness_error` gives the gap itself.

    Notes
    -----
    Quantus 0.6's ``Completeness`` normalises the attribution first by default (which breaks
    the sum) and tests exact float equality.
    """
    x = check_input(inputs)
    a = relevance(x, attribution)
    base = baseline_values(x, baseline, tuple(x.shape[1:]))
    resolved = Target(target, x.shape[0])
    with torch.inference_mode():
        change = (resolved.score(model(x)) - resolved.score(model(base))).double()
    gap = (a.sum(1).to(change.device) - change).abs()
    return (gap <= atol + rtol * change.abs()).to(x.dtype)


def non_sensitivity(model: nn.Module, inputs: Tensor, attribution: Tensor,
                    target: TargetLike = None, *, eps: float = 1e-5, features_in_step: int = 1,
                    baseline: Baseline = "black", absolute: bool = True, normalise: bool = True,
                    score: Score = "softmax", batch_size: int = 256) -> Tensor:
    """How many features break "no relevance exactly where the model does not care".

    Each group of ``features_in_step`` features (in memory order) is set to ``baseline`` alone;
    the model is *insensitive* to it when the score moves by less than ``eps``. A group
    violates the axiom when it is insensitive but has relevance ``>= eps`` somewhere, or
    sensitive but has relevance ``< eps`` everywhere. Returns the number of violating groups
    (lower is better; 0 is perfect). With one feature per group (the default, as Quantus) it
    counts features. The score is the class probability by default (as Quantus).
    """
    x = check_input(inputs)
    a = relevance(x, attribution, absolute=absolute, normalise=normalise).to(x.device)
    warn_training(model)
    n, p = a.shape
    s = check_positive_int("features_in_step", features_in_step)
    groups, k = step_groups(torch.arange(p, device=x.device).expand(n, p), s)
    scorer = make_scorer(target, n, score)
    clean = scores_of(model, x, scorer, batch_size)
    values = baseline_values(x, baseline, (k,))
    perturbed = score_replaced(model, x, groups, values, scorer, batch_size, clean)
    insensitive = (perturbed - clean.double()[:, None]).abs() < eps
    no_relevance = (a.gather(1, groups.reshape(n, -1)).reshape(n, k, s) < eps).all(2)
    return (insensitive ^ no_relevance).sum(1).to(x.dtype)


def shift_first_layer(model: nn.Module, shift: float, example: Tensor) -> nn.Module:
    """A copy of ``model`` that gives ``model(x)`` for the input ``x + shift``.

    The first convolution or linear layer the input reaches absorbs the shift in its bias:
    ``b' = b - W (shift * 1)`` (for a padded convolution, from the output far from the
    border). The user's model is not touched.
    """
    first, shape = _first_layer(model, example)
    clone = copy.deepcopy(model)
    layer = dict(clone.named_modules())[first]
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"input_invariance: the first layer {first!r} has no weight")
    with torch.no_grad():
        probe = torch.full(shape, float(shift), dtype=example.dtype, device=example.device)
        out = layer(probe)
        bias = getattr(layer, "bias", None)
        if out.dim() > 2:
            centre = tuple(d // 2 for d in out.shape[2:])
            index = (0, slice(None), *centre)
            response = out[index]
        else:
            response = out[0]
        if bias is None:
            layer.bias = nn.Parameter(-response.clone())
        else:
            bias.copy_(2 * bias - response)
    return clone


def _first_layer(model: nn.Module, example: Tensor) -> tuple[str, tuple[int, ...]]:
    """Name of the first leaf module with a weight that the forward pass calls, and the shape
    of its input for one sample."""
    names = {m: n for n, m in model.named_modules()}
    seen: list[tuple[str, tuple[int, ...]]] = []

    def hook(module: nn.Module, args: Any) -> None:
        if not seen and isinstance(getattr(module, "weight", None), Tensor) \
                and not any(True for _ in module.children()) and args \
                and isinstance(args[0], Tensor):
            seen.append((names[module], tuple(args[0].shape)))

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()]
    try:
        with torch.inference_mode():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    if not seen:
        raise ValueError("input_invariance: the model has no layer with weights")
    return seen[0]


def input_invariance(model: nn.Module, inputs: Tensor, attribution: Tensor | None = None,
                     target: TargetLike = None, *, explain: Any = None,
                     model_explain: Any = None, shift: float = -1.0,
                     atol: float = 1e-4) -> Tensor:
    """Whether the explanation stays the same when a shift of the input is absorbed by the model.

    Builds ``model'`` (:func:`shift_first_layer`) with ``model'(x + shift) = model(x)`` and
    explains ``x + shift`` with it; True (1.0) where every entry of the new attribution is
    within ``atol`` of the original (Kindermans et al. 2019). Higher is better.

    ``model_explain(model, inputs, target)`` explains with a given model; or pass ``explain``,
    a lumos attributor, which is rebuilt for ``model'`` (:func:`lumos.metrics.rebind`).
    """
    from lumos.metrics.mprt import model_explainer

    x = check_input(inputs)
    run = model_explainer(model_explain if model_explain is not None else explain)
    original = run(model, x, target) if attribution is None else attribution
    original = check_attribution(x, original).detach()
    shifted_model = shift_first_layer(model, shift, x)
    moved = run(shifted_model, x + shift, target)
    close = (moved - original).abs() <= atol
    return close.reshape(x.shape[0], -1).all(1).to(x.dtype)
