"""Every metric by name: its family, which way is better, and its class form for ``evaluate``.

A metric is a function (one value per sample); its class form holds options and is called with a
:class:`Context` (one batch of one method) by :func:`lumos.metrics.evaluate`::

    from lumos.metrics import FaithfulnessCorrelation, PointingGame, evaluate
    evaluate(model, (x, y), methods, [FaithfulnessCorrelation(n_runs=50), "pointing_game"],
             masks=masks)

``SPECS[name]`` describes the function ``name``; ``METRICS[name]`` is its class form with the
defaults ``evaluate`` uses (cheaper than the function's, which follow Quantus, where a metric
re-runs the method hundreds of times).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lumos.metrics import (
    agreement,
    axioms,
    faithfulness,
    localisation,
    regions,
    robustness,
    stability,
)
from lumos.metrics.complexity import complexity, effective_complexity, sparseness
from lumos.metrics.mprt import mprt, random_logit, smooth_mprt
from lumos.metrics.road import road

FAMILIES = ("faithfulness", "robustness", "localisation", "complexity", "randomisation",
            "axiomatic")


@dataclass(frozen=True)
class Context:
    """What a metric sees for one batch of one method."""

    model: nn.Module
    x: Tensor
    target: Tensor
    attribution: Tensor
    explain: Callable[[Tensor, Any], Tensor]
    seconds: float
    method: Any = None
    mask: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    """A metric function and what it means."""

    name: str
    function: Callable[..., Tensor]
    family: str
    better: str
    summary: str

    @property
    def needs(self) -> frozenset[str]:
        """Which of model / inputs / attribution / target / explain / mask it takes."""
        params = inspect.signature(self.function).parameters
        return frozenset(p for p in ("model", "inputs", "attribution", "target", "explain",
                                     "mask") if p in params)


class Metric:
    """Class form of a metric function: options now, values per sample when called.

    Unknown options raise at construction, listing the valid ones.
    """

    spec: ClassVar[Spec]
    #: Options ``evaluate`` uses unless given (cheaper than the function's defaults).
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        params = inspect.signature(self.spec.function).parameters
        allowed = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
                   and n not in ("explain", "mask", "curve")]
        unknown = [k for k in options if k not in allowed and k != "name"]
        if unknown:
            raise TypeError(f"{type(self).__name__} has no option {unknown[0]!r}; options: "
                            f"{', '.join(allowed) or '(none)'}")
        self.name: str = options.pop("name", None) or self.default_name(options)
        self.options = {**self.defaults, **options}

    @classmethod
    def default_name(cls, options: dict[str, Any]) -> str:
        """The column name (order-dependent metrics name their order)."""
        order = options.get("order", cls.defaults.get("order"))
        return f"{cls.spec.name}_{order}" if order in ("morf", "lerf") else cls.spec.name

    @property
    def family(self) -> str:
        return self.spec.family

    @property
    def better(self) -> str:
        if self.spec.name in ("region_perturbation", "road") and \
                self.options.get("order", "morf") == "lerf":
            return "lower" if self.spec.better == "higher" else "higher"
        return self.spec.better

    def __call__(self, c: Context) -> Tensor:
        need = self.spec.needs
        kwargs: dict[str, Any] = dict(self.options)
        params = inspect.signature(self.spec.function).parameters
        if "explain" in need:  # metrics that change the model rebuild the method for it
            rebuilds = "model_explain" in params and c.method is not None
            kwargs["explain"] = c.method if rebuilds else c.explain
        if "mask" in need:
            if c.mask is None:
                raise ValueError(f"{self.name} needs masks of where the evidence is: pass "
                                 "masks= to evaluate (or a folder: dataset with .mask.png files)")
            kwargs["mask"] = c.mask
            kwargs.setdefault("empty", "nan")
        args = {"model": c.model, "inputs": c.x, "attribution": c.attribution,
                "target": c.target}
        kwargs.update({k: v for k, v in args.items() if k in need})
        if "generator" in params:
            kwargs.setdefault("generator", torch.Generator().manual_seed(int(c.extra.get(
                "seed", 0))))
        return self.spec.function(**kwargs).double().reshape(c.x.shape[0], -1)[:, 0]

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


def _camel(name: str) -> str:
    return re.sub(r"(?:^|_)([a-z0-9])", lambda m: m.group(1).upper(), name)


SPECS: dict[str, Spec] = {}
CLASSES: dict[str, type[Metric]] = {}


def register(function: Callable[..., Tensor], family: str, better: str, summary: str,
             class_name: str | None = None, **defaults: Any) -> type[Metric]:
    """Describe ``function`` and make its class form (named after Quantus's class)."""
    spec = Spec(function.__name__, function, family, better, summary)
    SPECS[spec.name] = spec
    cls = type(class_name or _camel(spec.name), (Metric,), {
        "spec": spec, "defaults": defaults, "__module__": __name__,
        "__doc__": f"Class form of :func:`{function.__module__}.{function.__name__}`: "
                   f"{summary} ({better} is better)."})
    CLASSES[spec.name] = cls
    return cls


# faithfulness
FaithfulnessCorrelation = register(
    faithfulness.faithfulness_correlation, "faithfulness", "higher",
    "subset relevance vs score drop, Pearson", n_runs=50, subset_size=0.2857)
FaithfulnessEstimate = register(
    faithfulness.faithfulness_estimate, "faithfulness", "higher",
    "feature relevance vs its removal's drop, Pearson", features_in_step=28)
Monotonicity = register(faithfulness.monotonicity, "faithfulness", "higher",
                        "inserting features least relevant first never lowers the score",
                        features_in_step=28)
MonotonicityCorrelation = register(
    faithfulness.monotonicity_correlation, "faithfulness", "higher",
    "relevance vs score variance under noise, Spearman", features_in_step=28, n_samples=10)
SensitivityN = register(faithfulness.sensitivity_n, "faithfulness", "higher",
                        "subset-of-n relevance vs score drop, Pearson", n_runs=50)
Selectivity = register(regions.selectivity, "faithfulness", "lower",
                       "area under the score curve, most relevant patches removed first")
RegionPerturbation = register(regions.region_perturbation, "faithfulness", "higher",
                              "AOPC of patch removal", patch_size=4, order="morf")
IROF = register(regions.irof, "faithfulness", "higher",
                "area over the relative score curve, superpixels removed", class_name="IROF")
ROAD = register(road, "faithfulness", "lower",
                "share still classified after noisy imputation", class_name="ROAD",
                percentages=(10, 30, 50, 70, 90), order="morf")
Sufficiency = register(agreement.sufficiency, "faithfulness", "higher",
                       "alike explanations share the prediction")
Infidelity = register(robustness.infidelity, "faithfulness", "lower",
                      "squared error of predicted score change under noise")
# robustness
LocalLipschitzEstimate = register(
    robustness.local_lipschitz_estimate, "robustness", "lower",
    "largest explanation change per input change", n_samples=10)
MaxSensitivity = register(robustness.max_sensitivity, "robustness", "lower",
                          "largest relative explanation change under noise", n_samples=10)
AvgSensitivity = register(robustness.avg_sensitivity, "robustness", "lower",
                          "mean relative explanation change under noise", n_samples=10)
Continuity = register(robustness.continuity, "robustness", "lower",
                      "largest explanation change per translation", n_steps=7)
Consistency = register(agreement.consistency, "robustness", "higher",
                       "same discretised explanation, same prediction")
RelativeInputStability = register(
    stability.relative_input_stability, "robustness", "lower",
    "relative explanation change over relative input change", n_samples=10)
RelativeOutputStability = register(
    stability.relative_output_stability, "robustness", "lower",
    "relative explanation change over output change", n_samples=10)
RelativeRepresentationStability = register(
    stability.relative_representation_stability, "robustness", "lower",
    "relative explanation change over representation change", n_samples=10)
# localisation
PointingGame = register(localisation.pointing_game, "localisation", "higher",
                        "the most relevant feature lies in the mask")
AttributionLocalisation = register(localisation.attribution_localisation, "localisation",
                                   "higher", "share of |relevance| in the mask")
TopKIntersection = register(localisation.top_k_intersection, "localisation", "higher",
                            "share of the k most relevant features in the mask", k=50)
RelevanceRankAccuracy = register(localisation.relevance_rank_accuracy, "localisation", "higher",
                                 "share of the |mask| most relevant features in the mask")
RelevanceMassAccuracy = register(localisation.relevance_mass_accuracy, "localisation", "higher",
                                 "share of relevance mass in the mask")
LocalisationAUC = register(localisation.localisation_auc, "localisation", "higher",
                           "ROC AUC of relevance as a mask detector",
                           class_name="LocalisationAUC")
Focus = register(localisation.focus, "localisation", "higher",
                 "share of positive relevance in the mask")
# complexity
Sparseness = register(sparseness, "complexity", "higher", "Gini index of |relevance|")
Complexity = register(complexity, "complexity", "lower",
                      "entropy of the relevance distribution")
EffectiveComplexity = register(effective_complexity, "complexity", "lower",
                               "features with |relevance| above eps")
# randomisation
RandomLogit = register(random_logit, "randomisation", "lower",
                       "similarity to the explanation of a random other class")
MPRT = register(mprt, "randomisation", "lower",
                "similarity after randomising the model top-down", class_name="MPRT")
SmoothMPRT = register(smooth_mprt, "randomisation", "lower",
                      "MPRT with explanations averaged over noise", class_name="SmoothMPRT",
                      n_samples=5)
# axiomatic
Completeness = register(axioms.completeness, "axiomatic", "higher",
                        "sum of relevance equals f(x) - f(baseline) within 1%")
NonSensitivity = register(axioms.non_sensitivity, "axiomatic", "lower",
                          "features violating zero relevance iff no effect",
                          features_in_step=28)
InputInvariance = register(axioms.input_invariance, "axiomatic", "higher",
                           "explanation unchanged by a shift the model absorbs")


def specs(family: str | None = None) -> list[Spec]:
    """The metric functions of ``family`` (all when ``None``), in registration order."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")
    return [s for s in SPECS.values() if family is None or s.family == family]
