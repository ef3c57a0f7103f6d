"""Run many metrics for many explanation methods: one table, mean and standard error.

Each metric is a small frozen config class (the functional core lives in the other modules);
a string names a metric with its default settings::

    result = evaluate(model, (x, y), methods={"IG": lumos.IntegratedGradients(model),
                                              "random": random_attribution()},
                      metrics=["aopc_morf", "aopc_lerf", "sparseness", "runtime"])
    print(result.table()); result.to_json("metrics.json"); result.to_csv("metrics.csv")
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
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
from lumos.metrics.axioms import completeness_error, sparseness
from lumos.metrics.fills import Fill
from lumos.metrics.robustness import infidelity, max_sensitivity
from lumos.metrics.table import EvaluationResult
from lumos.progress import Progress


@dataclass(frozen=True)
class Context:
    """What a metric sees for one batch of one method."""

    model: nn.Module
    x: Tensor
    target: Tensor
    attribution: Tensor
    explain: ExplainFn
    seconds: float


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
class Infidelity:
    """Infidelity under Gaussian noise (lower is better)."""

    n_perturb: int = 32
    std: float = 0.1
    normalize: bool = True
    name: str = "infidelity"
    better: str = "lower"

    def __call__(self, c: Context) -> Tensor:
        return infidelity(c.model, c.x, c.attribution, c.target, n_perturb=self.n_perturb,
                          std=self.std, normalize=self.normalize)


@dataclass(frozen=True)
class MaxSensitivity:
    """Max-sensitivity of the method (lower is better); re-runs the method ``n_perturb`` times."""

    radius: float = 0.02
    n_perturb: int = 10
    name: str = "max_sensitivity"
    better: str = "lower"

    def __call__(self, c: Context) -> Tensor:
        return max_sensitivity(c.explain, c.x, c.target, radius=self.radius,
                               n_perturb=self.n_perturb, attribution=c.attribution)


@dataclass(frozen=True)
class Sparseness:
    """Gini index of |attribution| (higher: more concentrated)."""

    name: str = "sparseness"
    better: str = "higher"

    def __call__(self, c: Context) -> Tensor:
        return sparseness(c.attribution)


@dataclass(frozen=True)
class Completeness:
    """Relative gap ``|sum(attribution) - (f(x) - f(baseline))| / |f(x) - f(baseline)|``."""

    baselines: float = 0.0
    name: str = "completeness"
    better: str = "lower"

    def __call__(self, c: Context) -> Tensor:
        if c.attribution.shape != c.x.shape:
            return torch.full((c.x.shape[0],), float("nan"))
        return completeness_error(c.model, c.x, c.attribution, c.target, self.baselines)


@dataclass(frozen=True)
class Runtime:
    """Seconds per sample that the method took (lower is better)."""

    name: str = "runtime"
    better: str = "lower"

    def __call__(self, c: Context) -> Tensor:
        return torch.full((c.x.shape[0],), c.seconds)


METRICS: dict[str, Any] = {
    "aopc_morf": AOPC("morf"), "aopc_lerf": AOPC("lerf"),
    "insertion": InsertionDeletionAUC("insertion"), "deletion": InsertionDeletionAUC("deletion"),
    "infidelity": Infidelity(), "max_sensitivity": MaxSensitivity(),
    "sparseness": Sparseness(), "completeness": Completeness(), "runtime": Runtime(),
}
DEFAULT_METRICS = ("aopc_morf", "aopc_lerf", "insertion", "deletion", "sparseness", "runtime")


def resolve_metric(metric: Any) -> Any:
    """A metric config from a name or a config object (anything with name, better, call)."""
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
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

    return explain


def inverted(method: ExplainFn | Attributor) -> ExplainFn:
    """The negated attribution of ``method``: its MoRF is the method's LeRF (a bad reference)."""
    fn = as_explain_fn(method)
    return lambda x, target: -fn(x, target)


def _batches(data: tuple[Tensor, Tensor] | Iterable[tuple[Tensor, Tensor]],
             batch_size: int) -> list[tuple[Tensor, Tensor]]:
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Tensor):
        x, y = data
        check_input(x)
        if y.shape[:1] != x.shape[:1]:
            raise ValueError(f"data has {x.shape[0]} inputs but {y.shape[0]} labels")
        return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return [(check_input(bx), by) for bx, by in data]


def evaluate(model: nn.Module, data: tuple[Tensor, Tensor] | Iterable[tuple[Tensor, Tensor]],
             methods: Mapping[str, ExplainFn | Attributor],
             metrics: Sequence[Any] = DEFAULT_METRICS, *, target: str = "label",
             batch_size: int = 50, device: str | torch.device | None = None,
             progress: bool = True) -> EvaluationResult:
    """Measure every method with every metric on the same samples and targets.

    Parameters
    ----------
    model:
        The classifier (used as is; put it in eval mode yourself).
    data:
        ``(inputs, labels)`` tensors, or an iterable of such batches (a DataLoader).
    methods:
        ``{name: method}``: attributors (``.attribute(x, target=)``) or ``(x, target) ->
        attribution`` callables; see :func:`random_attribution` and :func:`inverted`.
    metrics:
        Names from :data:`METRICS` or config objects (:class:`AOPC`, ...).
    target:
        ``"label"`` explains the true class, ``"predicted"`` the model's top class.
    batch_size:
        Samples per batch when ``data`` is a pair of tensors.
    device:
        Move every batch there (the model must already be there).
    progress:
        Draw a progress bar on stderr.
    """
    check_choice_target(target)
    configs = [resolve_metric(m) for m in metrics]
    fns = {name: as_explain_fn(m) for name, m in methods.items()}
    batches = _batches(data, batch_size)
    values: dict[str, dict[str, list[float]]] = {n: {c.name: [] for c in configs} for n in fns}
    n_samples = 0
    with Progress(len(batches) * len(fns), "evaluate", enabled=progress) as bar:
        for bx, by in batches:
            bx, by = (bx.to(device), by.to(device)) if device is not None else (bx, by)
            t = _targets(model, bx, by, target)
            n_samples += bx.shape[0]
            for name, fn in fns.items():
                start = time.perf_counter()
                attribution = check_attribution(bx, fn(bx, t)).detach()
                seconds = (time.perf_counter() - start) / bx.shape[0]
                context = Context(model, bx, t, attribution, fn, seconds)
                for config in configs:
                    values[name][config.name] += config(context).detach().cpu().double().tolist()
                bar.update(1, postfix=name)
    return EvaluationResult(list(fns), [c.name for c in configs], values,
                            {c.name: c.better for c in configs},
                            {"samples": n_samples, "target": target})


def check_choice_target(target: str) -> None:
    """``target`` must be ``"label"`` or ``"predicted"``."""
    if target not in ("label", "predicted"):
        raise ValueError(f"target must be 'label' or 'predicted', got {target!r}")


def _targets(model: nn.Module, x: Tensor, y: Tensor, target: str) -> Tensor:
    if target == "label":
        return y.long()
    with torch.inference_mode():
        return model(x).argmax(1)
