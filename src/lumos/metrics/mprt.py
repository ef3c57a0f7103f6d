"""Randomisation: does the explanation depend on the model and on the class it explains?

- :func:`mprt`, the model parameter randomisation test (Adebayo et al. 2018): re-initialise the
  layers of a copy of the model (cascading from the top, from the bottom, or one at a time) and
  measure how similar the new explanations are to the original ones; lower is better.
- :func:`smooth_mprt` (Hedstrom et al. 2023): the same with every explanation averaged over
  noisy copies of the input (less noise in the test).
- :func:`random_logit` (Sixt et al. 2020): similarity between the explanation of the target
  class and of a random other class; lower is better.

Layers are re-initialised with their own ``reset_parameters()`` under ``torch.manual_seed(seed +
1)`` inside a forked RNG (as Quantus does; the global RNG is left as it was), on a deep copy.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import TargetLike
from lumos.metrics._common import (
    as_explain_fn,
    check_attribution,
    check_choice,
    check_positive_int,
)
from lumos.metrics._prep import check_targets, generator_or_default, relevance

Order = Literal["top_down", "bottom_up", "independent"]
Similarity = str | Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class ModelMethod:
    """A method that can be built for any model: ``factory(model)`` returns an attributor or an
    ``(inputs, target) -> attribution`` function. Randomisation metrics need one (or a lumos
    attributor, which :func:`rebind` rebuilds)."""

    factory: Callable[[nn.Module], Any]

    def __call__(self, model: nn.Module) -> Any:
        return self.factory(model)


def rebind(method: Any, model: nn.Module) -> Any:
    """The same explanation method for another ``model``.

    Works for lumos's attributors (IG, LRP, the gradient family), a :class:`ModelMethod`, and
    model-free methods (marked ``model_free = True``, e.g. :func:`random_attribution`).
    """
    if isinstance(method, ModelMethod):
        return method(model)
    if getattr(method, "model_free", False):
        return method
    if getattr(method, "model", None) is model:
        return method
    cls = type(method)
    if cls.__module__.startswith("lumos.lrp") and cls.__name__ == "LRP":
        return cls(model, composite=method.composite)
    if cls.__module__.startswith("lumos.attribution") and hasattr(method, "model"):
        clone = copy.copy(method)
        clone.model = model
        return clone
    raise TypeError(f"cannot rebuild {cls.__name__} for another model: pass a lumos attributor, "
                    "lumos.metrics.ModelMethod(lambda model: ...) or model_explain=(model, "
                    "inputs, target) -> attribution")


ModelExplainFn = Callable[[nn.Module, Tensor, TargetLike], Tensor]


def model_explainer(method: Any) -> ModelExplainFn:
    """``(model, inputs, target) -> attribution`` for a method given as an attributor, a
    :class:`ModelMethod`, or already as such a function."""
    if method is None:
        raise ValueError("this metric explains with changed models: pass explain= (a lumos "
                         "attributor or lumos.metrics.ModelMethod) or model_explain=")
    if callable(method) and not hasattr(method, "attribute") \
            and not isinstance(method, ModelMethod) and _positional(method) >= 3:
        return lambda m, x, t: method(m, x, t)

    # the method rebuilt for the model of the last call: a metric explains one model several
    # times in a row (smooth_mprt's noisy copies), and a rebuilt LRP prepares itself once
    bound: list[tuple[nn.Module, Callable[[Tensor, Any], Tensor]]] = []

    def run(model: nn.Module, x: Tensor, target: TargetLike) -> Tensor:
        if not bound or bound[0][0] is not model:
            bound[:] = [(model, as_explain_fn(rebind(method, model)))]
        return check_attribution(x, bound[0][1](x, target)).detach()

    return run


def _positional(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds)


def randomisation_layers(model: nn.Module) -> list[str]:
    """Names of the modules that can be re-initialised (``reset_parameters``), forward order."""
    return [name for name, module in model.named_modules()
            if hasattr(module, "reset_parameters")]


def randomised_models(model: nn.Module, order: Order = "top_down",
                      seed: int = 42) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(layer, copy)``: cascading (``top_down``/``bottom_up``, cumulative) or one layer at
    a time (``independent``); each layer reset under ``torch.manual_seed(seed + 1)``."""
    check_choice("layer_order", order, ("top_down", "bottom_up", "independent"))
    names = randomisation_layers(model)
    if not names:
        raise ValueError("the model has no layers with reset_parameters() to randomise")
    if order != "bottom_up":
        names = names[::-1]
    current = copy.deepcopy(model)
    for name in names:
        if order == "independent":
            current = copy.deepcopy(model)
        module = dict(current.named_modules())[name]
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed + 1)
            module.reset_parameters()
        yield name, current


def similarity_fn(similarity: Similarity) -> Callable[[Tensor, Tensor], Tensor]:
    """Row-wise similarity of two ``(N, P)`` relevance tensors by name, or a callable."""
    if callable(similarity):
        return similarity
    from lumos.metrics._prep import pearson, spearman_rows

    table: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
        "spearman": spearman_rows, "pearson": pearson}
    if similarity not in table:
        raise ValueError(f"similarity must be 'spearman', 'pearson' or a callable, got "
                         f"{similarity!r}")
    return table[similarity]


def _needed(model: nn.Module, order: Order, seed: int, reduce: str) -> Iterator[nn.Module]:
    """The randomised models ``reduce`` looks at: all, or only the last one (each layer is
    reset under the same seed, so the last model does not depend on the ones before).

    Cascading orders randomise one copy further at each step: use each model before asking
    for the next one.
    """
    check_choice("reduce", reduce, ("last", "mean", "none"))
    models = randomised_models(model, order, seed)
    if reduce != "last":
        yield from (m for _, m in models)
        return
    last = None
    for _, m in models:
        last = m
    assert last is not None
    yield last


def _reduce(rows: Tensor, reduce: str) -> Tensor:
    check_choice("reduce", reduce, ("last", "mean", "none"))
    if reduce == "none":
        return rows
    return rows[-1] if reduce == "last" else rows.mean(0)


def mprt(model: nn.Module, inputs: Tensor, attribution: Tensor | None = None,
         target: TargetLike = None, *, explain: Any = None, model_explain: Any = None,
         layer_order: Order = "top_down", seed: int = 42, similarity: Similarity = "spearman",
         absolute: bool = True, normalise: bool = True, reduce: str = "last") -> Tensor:
    """Model parameter randomisation test: similarity of explanations of randomised models.

    Returns the similarity (default Spearman, on ``|relevance|`` normalised per sample, as
    Quantus) between the original explanation and the one of each randomised copy: after the
    last randomisation (``reduce="last"``, default), averaged over the layers (``"mean"``), or
    all ``(L, N)`` rows (``"none"``, in :func:`randomisation_layers` order of randomisation).
    Lower is better: an explanation of the model must change when the model is destroyed.

    Notes
    -----
    Quantus 0.6's ``return_average_correlation`` also averages in the original-vs-original
    similarity (it skips a key ``"orig"`` but stores ``"original"``); lumos averages the
    randomised layers only.
    """
    x = check_input(inputs)
    run = model_explainer(model_explain if model_explain is not None else explain)
    original = run(model, x, target) if attribution is None else attribution
    a = relevance(x, original, absolute=absolute, normalise=normalise)
    compare = similarity_fn(similarity)
    rows = [compare(a, relevance(x, run(m, x, target), absolute=absolute, normalise=normalise))
            for m in _needed(model, layer_order, seed, reduce)]
    return _reduce(torch.stack(rows).to(x.device), reduce)


def smooth_noise(x: Tensor, generator: torch.Generator) -> Tensor:
    """One standard-normal draw shaped like ``x`` (float64, CPU generator)."""
    return torch.randn(tuple(x.shape), generator=generator, dtype=torch.float64)


def smoothed(run: ModelExplainFn, model: nn.Module, x: Tensor, target: TargetLike,
             n_samples: int, magnitude: float, generator: torch.Generator,
             explain_batch: int = 256) -> Tensor:
    """Mean explanation over ``n_samples`` inputs: ``n_samples - 1`` noisy copies (std
    ``magnitude`` times each sample's value range) and ``x`` itself.

    The copies are explained several at once (``explain_batch`` inputs per call at most); the
    mean adds them up in draw order, ``x`` last.
    """
    from lumos.metrics.robustness import _tiled

    dims = tuple(range(1, x.dim()))
    std = magnitude * (x.amax(dims, keepdim=True) - x.amin(dims, keepdim=True))
    n = x.shape[0]
    block = max(1, explain_batch // max(n, 1))
    total: Tensor | None = None
    for start in range(0, n_samples, block):
        count = min(block, n_samples - start)
        copies = [x if k == n_samples - 1 else
                  (x.double() + smooth_noise(x, generator).to(x.device) * std).to(x.dtype)
                  for k in range(start, start + count)]
        explained = run(model, torch.cat(copies) if count > 1 else copies[0],
                        _tiled(target, n, count))
        for k in range(count):
            a = explained[k * n:(k + 1) * n].double() / n_samples
            total = a if total is None else total + a
    assert total is not None
    return total


def smooth_mprt(model: nn.Module, inputs: Tensor, attribution: Tensor | None = None,
                target: TargetLike = None, *, explain: Any = None, model_explain: Any = None,
                layer_order: Order = "bottom_up", seed: int = 42, n_samples: int = 50,
                noise_magnitude: float = 0.1, similarity: Similarity = "spearman",
                absolute: bool = True, normalise: bool = True, reduce: str = "last",
                generator: torch.Generator | None = None, explain_batch: int = 256) -> Tensor:
    """Smooth MPRT: :func:`mprt` with every explanation averaged over noisy inputs.

    The original explanation is smoothed too (a given ``attribution`` is not used). Defaults as
    in Quantus (bottom-up, 50 samples, noise 0.1 of the value range). The noisy copies of a
    model's turn are explained together, ``explain_batch`` inputs per call at most. Lower is
    better.
    """
    x = check_input(inputs)
    del attribution  # the smoothed original replaces it
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    check_positive_int("explain_batch", explain_batch)
    run = model_explainer(model_explain if model_explain is not None else explain)
    gen = generator_or_default(generator)

    def prepared(m: nn.Module) -> Tensor:
        mean = smoothed(run, m, x, target, n_samples, noise_magnitude, gen, explain_batch)
        return relevance(x, mean, absolute=absolute, normalise=normalise)

    a = prepared(model)
    compare = similarity_fn(similarity)
    rows = [compare(a, prepared(m)) for m in _needed(model, layer_order, seed, reduce)]
    return _reduce(torch.stack(rows).to(x.device), reduce)


def ssim(a: Tensor, b: Tensor, shape: tuple[int, ...], window: int = 7) -> Tensor:
    """Structural similarity per row of ``(N, P)`` maps viewed as ``shape`` (scikit-image's
    ``structural_similarity``: uniform ``window``, sample covariance, constants 0.01 / 0.03,
    data range of both maps together, border of ``window // 2`` left out)."""
    n = a.shape[0]
    dims = len(shape)
    if any(s < window for s in shape):
        raise ValueError(f"ssim needs maps of at least {window} per side, got {shape}")
    x, y = a.double().reshape(n, 1, *shape), b.double().reshape(n, 1, *shape)
    if dims not in (1, 2):
        raise ValueError(f"ssim supports 1-D and 2-D maps, got {dims}-D")
    # the five window means in one box filter: window sums along each axis in turn (float64
    # average pooling is several times slower; the sums agree with it to 1e-15)
    boxed = torch.cat([x, y, x * x, y * y, x * y], 1)
    for axis in range(2, 2 + dims):
        boxed = boxed.unfold(axis, window, 1).sum(-1)
    ux, uy, uxx, uyy, uxy = (boxed / window ** dims).unbind(1)
    cov = window ** dims / (window ** dims - 1)
    vx = cov * (uxx - ux * ux)
    vy = cov * (uyy - uy * uy)
    vxy = cov * (uxy - ux * uy)
    both = torch.cat([a, b], 1).double()
    span = (both.amax(1) - both.amin(1)).reshape(n, *([1] * dims))
    c1, c2 = (0.01 * span) ** 2, (0.03 * span) ** 2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.reshape(n, -1).mean(1)


def random_logit(model: nn.Module, inputs: Tensor, attribution: Tensor | None = None,
                 target: TargetLike = None, *, explain: Any = None,
                 similarity: Similarity = "ssim", absolute: bool = False,
                 normalise: bool = True, generator: torch.Generator | None = None) -> Tensor:
    """Similarity between the explanation of ``target`` and of a random other class.

    The other class is drawn uniformly from the remaining ones (CPU ``generator``). Similarity
    ``"ssim"`` (default, as Quantus) compares the maps as images; ``"spearman"``/``"pearson"``
    or a callable on ``(N, P)`` rows work too. Lower is better.

    Notes
    -----
    Quantus 0.6 computes SSIM on the maps flattened to one dimension (a 7-pixel window along
    image rows) and needs ``num_classes`` (default 1000); lumos uses the image and the model's
    output size.
    """
    x = check_input(inputs)
    labels = check_targets(target, x.shape[0])
    fn = as_explain_fn(explain) if explain is not None else None
    if fn is None:
        raise ValueError("random_logit explains other classes: pass explain= (an attributor "
                         "or a function (inputs, target) -> attribution)")
    with torch.inference_mode():
        n_classes = model(x[:1]).shape[1]
    if n_classes < 2:
        raise ValueError("random_logit needs a model with at least two classes")
    original = fn(x, labels.to(x.device)) if attribution is None else attribution
    other = off_classes(labels, n_classes, generator)
    moved = check_attribution(x, fn(x, other.to(x.device))).detach()
    a = relevance(x, original, absolute=absolute, normalise=normalise)
    b = relevance(x, moved, absolute=absolute, normalise=normalise)
    if similarity == "ssim":
        grid = tuple(x.shape[2:]) if x.dim() >= 3 else tuple(x.shape[1:])
        return ssim(a, b, grid).to(x.device)
    return similarity_fn(similarity)(a, b).to(x.device)


def off_classes(labels: Tensor, n_classes: int, generator: torch.Generator | None) -> Tensor:
    """A uniformly drawn class other than ``labels[i]`` for every sample."""
    draw = torch.randint(0, n_classes - 1, (labels.shape[0],), generator=generator_or_default(
        generator))
    labels = labels.cpu()
    return draw + (draw >= labels).long()
