"""Metrics that measure how faithful, sane and robust an explanation is.

Functions first (batched over samples, on any device; the model is never modified):

- faithfulness: :func:`pixel_flipping` (+ region perturbation with ``patch``), :func:`aopc`,
  :func:`insertion_deletion`, :func:`infidelity`;
- sanity: :func:`model_randomization` (Adebayo et al. 2018);
- robustness: :func:`max_sensitivity`;
- axioms and shape: :func:`completeness_error`, :func:`conservation`, :func:`sparseness`;
- :func:`evaluate` runs methods x metrics into an :class:`EvaluationResult` table.
"""

from __future__ import annotations

from lumos.metrics.axioms import completeness_error, conservation, sparseness
from lumos.metrics.evaluate import (
    AOPC,
    METRICS,
    Completeness,
    Infidelity,
    InsertionDeletionAUC,
    MaxSensitivity,
    Runtime,
    Sparseness,
    evaluate,
    inverted,
    random_attribution,
)
from lumos.metrics.perturbation import (
    InsertionDeletion,
    aopc,
    auc,
    insertion_deletion,
    pixel_flipping,
)
from lumos.metrics.randomization import RandomizationResult, model_randomization
from lumos.metrics.robustness import infidelity, max_sensitivity
from lumos.metrics.similarity import spearman, ssim
from lumos.metrics.table import EvaluationResult

__all__ = [
    "AOPC", "METRICS", "Completeness", "EvaluationResult", "Infidelity", "InsertionDeletion",
    "InsertionDeletionAUC", "MaxSensitivity", "RandomizationResult", "Runtime", "Sparseness",
    "aopc", "auc", "completeness_error", "conservation", "evaluate", "infidelity",
    "insertion_deletion", "inverted", "max_sensitivity", "model_randomization",
    "pixel_flipping", "random_attribution", "sparseness", "spearman", "ssim",
]
