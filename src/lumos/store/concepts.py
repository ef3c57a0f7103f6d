"""Concepts in the store: per sample and concept layer, what relevance maximisation needs.

With ``explain-dataset --concepts LAYER`` each ``lrp:COMPOSITE`` method computes, in the same
forward and backward pass as its heatmap (:meth:`lumos.crp.CRP.statistics`), four
``(N, channels)`` arrays per concept layer, stored in the method's file::

    concepts/<layer>/relevance        sum of the layer's relevance over each channel's positions
    concepts/<layer>/relevance_max    its largest value at one position
    concepts/<layer>/activation       sum of the layer's output over each channel's positions
    concepts/<layer>/activation_max   its largest value at one position

(``<layer>`` is the module path, dots and all). ``lumos concepts`` ranks samples by them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from lumos.errors import UserError

#: The group of a method file that holds the concept layers.
GROUP = "concepts"


def field_name(layer: str, stat: str) -> str:
    """Dataset path of one statistic of one layer inside a method file."""
    return f"{GROUP}/{layer}/{stat}"


@dataclass
class Attributed:
    """An attribution-only result with more per-sample arrays to store beside it."""

    attribution: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)

    def detach(self) -> Attributed:
        return Attributed(self.attribution.detach(),
                          {k: v.detach() for k, v in self.extra.items()})

    @staticmethod
    def cat(parts: Sequence[Attributed]) -> Attributed:
        """The rows of ``parts`` one after another."""
        return Attributed(torch.cat([p.attribution for p in parts]),
                          {k: torch.cat([p.extra[k] for p in parts]) for k in parts[0].extra})


class ConceptStatistics:
    """``(x, target) -> Attributed``: an LRP heatmap and the concept layers' statistics from
    one pass (``target`` may be the store's :class:`~lumos.store.compute.Pick`)."""

    def __init__(self, model: nn.Module, composite: Any, layers: Sequence[str]) -> None:
        from lumos.crp import CRP

        self.crp = CRP(model, composite)
        self.layers = list(layers)

    def __call__(self, x: Tensor, target: Any) -> Attributed:
        stats = self.crp.statistics(x, target, self.layers, batch_size=len(x), heatmap=True)
        heat = stats.pop("")["heatmap"]
        return Attributed(heat, {field_name(layer, k): v for layer, s in stats.items()
                                 for k, v in s.items()})


def check_layers(model: nn.Module, example: Tensor, layers: Sequence[str]) -> dict[str, int]:
    """Channels of each concept layer of ``model`` for inputs like ``example`` (one sample);
    :class:`UserError` naming the layer when the model has no such layer."""
    from lumos.crp import CRP
    from lumos.crp.seam import LayerError

    if len(set(layers)) != len(layers):
        raise UserError("give each --concepts layer once")
    try:
        shapes = CRP(model).shapes(list(layers), example)
    except LayerError as err:
        raise UserError(f"--concepts: {err}") from err
    return {name: shape[0] for name, shape in shapes.items()}
