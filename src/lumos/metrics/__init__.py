"""Metrics that measure explanations, in the six families of Quantus, batched and seeded.

Functions first (one value per sample; batched, on any device; the model is never modified),
each named as the snake_case of Quantus's class; each has a class form for :func:`evaluate`
(``lumos.metrics.FaithfulnessCorrelation(...)``) and a declared direction
(``lumos.metrics.SPECS[name].better``):

- faithfulness: :func:`faithfulness_correlation`, :func:`faithfulness_estimate`,
  :func:`monotonicity`, :func:`monotonicity_correlation`, :func:`selectivity`,
  :func:`sensitivity_n`, :func:`irof`, :func:`road`, :func:`sufficiency`,
  :func:`region_perturbation`, :func:`pixel_flipping` (+ :func:`aopc`),
  :func:`insertion_deletion`, :func:`infidelity`;
- robustness: :func:`local_lipschitz_estimate`, :func:`max_sensitivity`,
  :func:`avg_sensitivity`, :func:`continuity`, :func:`consistency`,
  :func:`relative_input_stability`, :func:`relative_output_stability`,
  :func:`relative_representation_stability`;
- localisation (with a ``mask``): :func:`pointing_game`, :func:`attribution_localisation`,
  :func:`top_k_intersection`, :func:`relevance_rank_accuracy`,
  :func:`relevance_mass_accuracy`, :func:`localisation_auc`, :func:`focus`;
- complexity: :func:`sparseness`, :func:`complexity`, :func:`effective_complexity`;
- randomisation: :func:`random_logit`, :func:`mprt`, :func:`smooth_mprt`,
  :func:`model_randomization`;
- axiomatic: :func:`completeness`, :func:`completeness_error`, :func:`conservation`,
  :func:`non_sensitivity`, :func:`input_invariance`.

:func:`evaluate` runs methods x metrics into an :class:`EvaluationResult` (one table per
family). Conventions shared by all metrics: :mod:`lumos.metrics._prep`.
"""

from __future__ import annotations

from lumos.metrics.agreement import consistency, sufficiency
from lumos.metrics.axioms import (
    completeness,
    completeness_error,
    conservation,
    input_invariance,
    non_sensitivity,
)
from lumos.metrics.complexity import complexity, effective_complexity, sparseness
from lumos.metrics.evaluate import (
    AOPC,
    DEFAULT_METRICS,
    FAMILY_METRICS,
    METRICS,
    CompletenessError,
    InsertionDeletionAUC,
    Runtime,
    evaluate,
    inverted,
    random_attribution,
)
from lumos.metrics.faithfulness import (
    faithfulness_correlation,
    faithfulness_estimate,
    monotonicity,
    monotonicity_correlation,
    sensitivity_n,
)
from lumos.metrics.localisation import (
    attribution_localisation,
    focus,
    localisation_auc,
    pointing_game,
    quadrant_mask,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    top_k_intersection,
)
from lumos.metrics.mprt import ModelMethod, mprt, random_logit, rebind, smooth_mprt
from lumos.metrics.perturbation import (
    InsertionDeletion,
    aopc,
    auc,
    insertion_deletion,
    pixel_flipping,
)
from lumos.metrics.randomization import RandomizationResult, model_randomization
from lumos.metrics.regions import irof, region_perturbation, selectivity
from lumos.metrics.registry import (
    FAMILIES,
    IROF,
    MPRT,
    ROAD,
    SPECS,
    AttributionLocalisation,
    AvgSensitivity,
    Completeness,
    Complexity,
    Consistency,
    Context,
    Continuity,
    EffectiveComplexity,
    FaithfulnessCorrelation,
    FaithfulnessEstimate,
    Focus,
    Infidelity,
    InputInvariance,
    LocalisationAUC,
    LocalLipschitzEstimate,
    MaxSensitivity,
    Metric,
    Monotonicity,
    MonotonicityCorrelation,
    NonSensitivity,
    PointingGame,
    RandomLogit,
    RegionPerturbation,
    RelativeInputStability,
    RelativeOutputStability,
    RelativeRepresentationStability,
    RelevanceMassAccuracy,
    RelevanceRankAccuracy,
    Selectivity,
    SensitivityN,
    SmoothMPRT,
    Sparseness,
    Sufficiency,
    TopKIntersection,
)
from lumos.metrics.road import road
from lumos.metrics.robustness import (
    avg_sensitivity,
    continuity,
    infidelity,
    local_lipschitz_estimate,
    max_sensitivity,
)
from lumos.metrics.similarity import spearman, ssim
from lumos.metrics.stability import (
    relative_input_stability,
    relative_output_stability,
    relative_representation_stability,
)
from lumos.metrics.table import EvaluationResult

__all__ = [
    "AOPC", "DEFAULT_METRICS", "FAMILIES", "FAMILY_METRICS", "IROF", "METRICS", "MPRT", "ROAD",
    "SPECS", "AttributionLocalisation", "AvgSensitivity", "Completeness", "CompletenessError",
    "Complexity", "Consistency", "Context", "Continuity", "EffectiveComplexity",
    "EvaluationResult", "FaithfulnessCorrelation", "FaithfulnessEstimate", "Focus",
    "Infidelity", "InputInvariance", "InsertionDeletion", "InsertionDeletionAUC",
    "LocalLipschitzEstimate", "LocalisationAUC", "MaxSensitivity", "Metric", "ModelMethod",
    "Monotonicity", "MonotonicityCorrelation", "NonSensitivity", "PointingGame",
    "RandomLogit", "RandomizationResult", "RegionPerturbation", "RelativeInputStability",
    "RelativeOutputStability", "RelativeRepresentationStability", "RelevanceMassAccuracy",
    "RelevanceRankAccuracy", "Runtime", "Selectivity", "SensitivityN", "SmoothMPRT",
    "Sparseness", "Sufficiency", "TopKIntersection", "aopc", "attribution_localisation", "auc",
    "avg_sensitivity", "completeness", "completeness_error", "complexity", "conservation",
    "consistency", "continuity", "effective_complexity", "evaluate",
    "faithfulness_correlation", "faithfulness_estimate", "focus", "infidelity",
    "input_invariance", "insertion_deletion", "inverted", "irof", "local_lipschitz_estimate",
    "localisation_auc", "max_sensitivity", "model_randomization", "monotonicity",
    "monotonicity_correlation", "mprt", "non_sensitivity", "pixel_flipping", "pointing_game",
    "quadrant_mask", "random_attribution", "random_logit", "rebind", "region_perturbation",
    "relative_input_stability", "relative_output_stability",
    "relative_representation_stability", "relevance_mass_accuracy", "relevance_rank_accuracy",
    "road", "selectivity", "sensitivity_n", "smooth_mprt", "sparseness", "spearman", "ssim",
    "sufficiency", "top_k_intersection",
]
