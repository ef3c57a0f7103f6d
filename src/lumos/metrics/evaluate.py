"""Run many metrics for many explanation methods: one table, mean and standard error.

Each metric is a small frozen config class (the functional core lives in the other modules);
a string names a metric with its default settings::

    result = evaluate(model, (x, y), methods={"IG": lumos.IntegratedGradients(model),
                                              "random": random_attribution()},
                      metrics=["aopc_morf", "aopc_lerf", "sparseness", "runtime"])
    print(result.table()); result.to_json("metrics.json"); result.to_csv("metrics.csv")

Every metric of :mod:`lumos.metrics.registry` (all six families) is available by name or as a
class (``FaithfulnessCorrelation(n_runs=50)``); ``metrics="faithfulness"`` (a family name)
selects a whole family. Localisation metrics need ``masks``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.metrics import perturbation as pf
from lumos.metrics._common import (
    Attributor,
    ExplainFn,
    Score,
    Scorer,
    as_explain_fn,
    check_attribution,
)

__all__ = [
    "AOPC",
    "DEFAULT_METRICS",
    "FAMILY_METRICS",
    "METRICS",
    "SPECS",
    "CompletenessError",
    "Context",
    "InsertionDeletionAUC",
    "Runtime",
    "evaluate",
    "inverted",
    "random_attribution",
    "resolve_metrics",
]
from lumos.metrics.axioms import completeness_error
from lumos.metrics.fills import Fill
from lumos.metrics.mprt import ModelMethod
from lumos.metrics.registry import CLASSES, FAMILIES, SPECS, Context
from lumos.metrics.table import EvaluationResult
from lumos.progress import Progress


@dataclass(frozen=True)
class AOPC:
    """Area over the pixel-flipping curve (:func:`lumos.metrics.pixel_flipping`).

    MoRF: higher is better; LeRF: lower is better (the score should stay).
    """

    order: pf.Order = "morf"
    steps: int | None = 28
    patch: int = 1
    fill: Fill = 0.0
    score: Score = "logit"

    @property
    def name(self) -> str:
        return f"aopc_{self.order}"

    @property
    def better(self) -> str:
        return "higher" if self.order == "morf" else "lower"

    def __call__(self, c: Context) -> Tensor:
        curve = pf.pixel_flipping(c.model, c.x, c.attribution, c.target, steps=self.steps,
                                  patch=self.patch, order=self.order, fill=self.fill,
                                  score=self.score)
        return pf.aopc(curve)


@dataclass(frozen=True)
class InsertionDeletionAUC:
    """Insertion (higher is better) or deletion (lower is better) area, softmax score."""

    game: Literal["insertion", "deletion"] = "deletion"
    steps: int | None = 28
    patch: int = 1
    baseline: Fill = "blur"
    fill: Fill = 0.0

    @property
    def name(self) -> str:
        return self.game

    @property
    def better(self) -> str:
        return "higher" if self.game == "insertion" else "lower"

    def __call__(self, c: Context) -> Tensor:
        step, steps = pf.removal_steps(c.x, c.attribution, self.steps, self.patch)
        scorer = Scorer(c.target, c.x.shape[0], "softmax")
        reference = self.baseline if self.game == "insertion" else self.fill
        return pf.auc(pf.game_curve(c.model, c.x, self.game, step, steps, scorer, reference))


@dataclass(frozen=True)
class CompletenessError:
    """Relative gap ``|sum(attribution) - (f(x) - f(baseline))| / |f(x) - f(baseline)|``."""

    baselines: float = 0.0
    name: str = "completeness_error"
    better: str = "lower"
    family: str = "axiomatic"

    def __call__(self, c: Context) -> Tensor:
        if c.attribution.shape != c.x.shape:
            return torch.full((c.x.shape[0],), float("nan"))
        return completeness_error(c.model, c.x, c.attribution, c.target, self.baselines)


@dataclass(frozen=True)
class Runtime:
    """Seconds per sample that the method took (lower is better)."""

    name: str = "runtime"
    better: str = "lower"
    family: str = "cost"

    def __call__(self, c: Context) -> Tensor:
        return torch.full((c.x.shape[0],), c.seconds)


METRICS: dict[str, Any] = {
    "aopc_morf": AOPC("morf"), "aopc_lerf": AOPC("lerf"),
    "insertion": InsertionDeletionAUC("insertion"), "deletion": InsertionDeletionAUC("deletion"),
    **{name: cls() for name, cls in CLASSES.items()},
    "road_lerf": CLASSES["road"](order="lerf"),
    "region_perturbation_lerf": CLASSES["region_perturbation"](order="lerf"),
    "completeness_error": CompletenessError(), "runtime": Runtime(),
}
METRICS = {getattr(m, "name", k): m for k, m in METRICS.items()}
DEFAULT_METRICS = ("aopc_morf", "aopc_lerf", "insertion", "deletion", "sparseness", "runtime")
#: Metrics per family that ``evaluate`` runs for a family name (localisation needs masks).
FAMILY_METRICS: dict[str, tuple[str, ...]] = {
    family: tuple(name for name, m in METRICS.items() if getattr(m, "family", "") == family)
    for family in FAMILIES}


def family_of(metric: Any) -> str:
    """The family a metric config belongs to (``"faithfulness"`` for the pixel-flipping ones)."""
    return str(getattr(metric, "family", "faithfulness"))


def resolve_metrics(metrics: Sequence[Any] | str) -> list[Any]:
    """Metric configs from names, family names and config objects (in the order given).

    A family is named ``"family:NAME"``, or just ``NAME`` where no metric has that name (the
    metric ``"complexity"`` shadows its family: use ``"family:complexity"``).
    """
    items = [metrics] if isinstance(metrics, str) else list(metrics)
    out: list[Any] = []
    for item in items:
        family = item[len("family:"):] if isinstance(item, str) and item.startswith(
            "family:") else item
        if isinstance(family, str) and family in FAMILY_METRICS and (
                family != item or item not in METRICS):
            out += [METRICS[name] for name in FAMILY_METRICS[family]]
        else:
            out.append(resolve_metric(item))
    names = [m.name for m in out]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ValueError(f"metric {duplicate!r} is asked for twice; give one of them another "
                         "name (name=...)")
    return out


def resolve_metric(metric: Any) -> Any:
    """A metric config from a name or a config object (anything with name, better, call)."""
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)} or a "
                             f"family ({', '.join(FAMILIES)}, or family:NAME)")
        return METRICS[metric]
    if not (callable(metric) and hasattr(metric, "name") and hasattr(metric, "better")):
        raise TypeError(f"a metric must be a name or a config with .name, .better and "
                        f"__call__(context); got {type(metric).__name__}")
    return metric


def random_attribution(seed: int = 0) -> ExplainFn:
    """A method that knows nothing: uniform noise shaped like the input (a reference row)."""
    gen = torch.Generator().manual_seed(seed)

    def explain(x: Tensor, target: Tensor | None) -> Tensor:
        return torch.rand(x.shape, generator=gen, dtype=torch.float64).to(x)

    explain.model_free = True  # type: ignore[attr-defined]
    return explain


def inverted(method: ExplainFn | Attributor) -> ExplainFn:
    """The negated attribution of ``method``: its MoRF is the method's LeRF (a bad reference)."""
    fn = as_explain_fn(method)
    return lambda x, target: -fn(x, target)


Batch = tuple[Tensor, Tensor, Tensor | None]


def _batches(data: Any, batch_size: int, masks: Tensor | None) -> list[Batch]:
    """``(inputs, labels, masks or None)`` per batch, checked."""
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Tensor):
        x, y = data
        check_input(x)
        if y.shape[:1] != x.shape[:1]:
            raise ValueError(f"data has {x.shape[0]} inputs but {y.shape[0]} labels")
        if masks is not None and masks.shape[:1] != x.shape[:1]:
            raise ValueError(f"data has {x.shape[0]} inputs but {masks.shape[0]} masks")
        return [(x[i:i + batch_size], y[i:i + batch_size],
                 None if masks is None else masks[i:i + batch_size])
                for i in range(0, len(x), batch_size)]
    if masks is not None:
        raise ValueError("masks= goes with (inputs, labels) tensors; with batches, yield "
                         "(inputs, labels, masks) triples instead")
    out: list[Batch] = []
    for batch in data:
        if len(batch) not in (2, 3):
            raise ValueError("each batch must be (inputs, labels) or (inputs, labels, masks)")
        out.append((check_input(batch[0]), batch[1], batch[2] if len(batch) == 3 else None))
    return out


def evaluate(model: nn.Module, data: Any, methods: Mapping[str, Any],
             metrics: Sequence[Any] | str = DEFAULT_METRICS, *, target: str = "label",
             masks: Tensor | None = None, attributions: Mapping[str, Tensor] | None = None,
             batch_size: int = 50, device: str | torch.device | None = None, seed: int = 0,
             progress: bool = True) -> EvaluationResult:
    """Measure every method with every metric on the same samples and targets.

    Parameters
    ----------
    model:
        The classifier (used as is; put it in eval mode yourself).
    data:
        ``(inputs, labels)`` tensors, or an iterable of ``(inputs, labels)`` or ``(inputs,
        labels, masks)`` batches (a DataLoader).
    methods:
        ``{name: method}``: attributors (``.attribute(x, target=)``), ``(x, target) ->
        attribution`` callables, or :class:`lumos.metrics.ModelMethod` factories (needed by the
        randomisation metrics for methods that are not lumos attributors); see
        :func:`random_attribution` and :func:`inverted`.
    metrics:
        Names from :data:`METRICS`, family names (``"localisation"``, ...) or config objects
        (:class:`AOPC`, :class:`lumos.metrics.PointingGame`, ...).
    target:
        ``"label"`` explains the true class, ``"predicted"`` the model's top class.
    masks:
        Where the evidence is, per sample (localisation metrics); samples with an empty mask
        get no localisation value.
    attributions:
        ``{name: attribution of every sample}`` computed already (in data order): used instead
        of running the method, which then only serves the metrics that re-explain (robustness,
        randomisation); ``runtime`` is NaN for them.
    batch_size:
        Samples per batch when ``data`` is a pair of tensors.
    device:
        Move every batch there (the model must already be there).
    seed:
        Seeds the metrics that draw noise (the same draws for every method).
    progress:
        Draw a progress bar on stderr.
    """
    check_choice_target(target)
    configs = resolve_metrics(metrics)
    bound = {name: m(model) if isinstance(m, ModelMethod) else m for name, m in methods.items()}
    fns = {name: as_explain_fn(m) for name, m in bound.items()}
    batches = _batches(data, batch_size, masks)
    values: dict[str, dict[str, list[float]]] = {n: {c.name: [] for c in configs} for n in fns}
    n_samples = 0
    given = dict(attributions or {})
    with Progress(len(batches) * len(fns), "evaluate", enabled=progress) as bar:
        for bx, by, bm in batches:
            if device is not None:
                bx, by = bx.to(device), by.to(device)
                bm = None if bm is None else bm.to(device)
            t = _targets(model, bx, by, target)
            n_samples += bx.shape[0]
            for name, fn in fns.items():
                start = time.perf_counter()
                if name in given:
                    rows = given[name][n_samples - bx.shape[0]:n_samples].to(bx.device)
                    attribution, seconds = check_attribution(bx, rows).detach(), float("nan")
                else:
                    attribution = check_attribution(bx, fn(bx, t)).detach()
                    seconds = (time.perf_counter() - start) / bx.shape[0]
                method = methods[name]
                context = Context(model, bx, t, attribution, fn, seconds,
                                  method if isinstance(method, ModelMethod) else bound[name],
                                  bm, {"seed": seed})
                for config in configs:
                    values[name][config.name] += config(context).detach().cpu().double().tolist()
                bar.update(1, postfix=name)
    return EvaluationResult(list(fns), [c.name for c in configs], values,
                            {c.name: c.better for c in configs},
                            {"samples": n_samples, "target": target, "seed": seed},
                            {c.name: family_of(c) for c in configs})


def check_choice_target(target: str) -> None:
    """``target`` must be ``"label"`` or ``"predicted"``."""
    if target not in ("label", "predicted"):
        raise ValueError(f"target must be 'label' or 'predicted', got {target!r}")


def _targets(model: nn.Module, x: Tensor, y: Tensor, target: str) -> Tensor:
    if target == "label":
        return y.long()
    with torch.inference_mode():
        return model(x).argmax(1)
