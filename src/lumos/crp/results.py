"""What CRP returns besides plain tensors: conditional heatmaps with where they come from, and
glocal explanations (one sample's most relevant concepts with their references)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from lumos.crp.conditions import Condition


@dataclass(frozen=True)
class ConceptHeatmaps:
    """Conditional heatmaps of ``N`` samples under ``K`` conditions.

    Attributes
    ----------
    heatmaps:
        ``(N, K, *input)``: the input relevance that flows through each condition's concepts.
    relevance:
        ``(N, K)``: the relevance at the condition's highest layer that its concept holds
        (with one layer: the concept's relevance for the decision).
    positions:
        Per condition ``(N, *positions)``: that relevance per position of the layer (the
        channel's spatial map, one value per token of a transformer), the concept's
        channels summed.
    conditions:
        The conditions, in canonical form ``{layer: (channel, ...)}``.
    layers:
        Each condition's highest layer.
    """

    heatmaps: Tensor
    relevance: Tensor
    positions: list[Tensor]
    conditions: list[Condition]
    layers: list[str]
