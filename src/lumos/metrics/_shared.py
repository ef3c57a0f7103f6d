"""Scores of perturbed inputs shared between the methods of one :func:`lumos.metrics.evaluate`.

Some metrics perturb the inputs the same way whatever the attribution: faithfulness correlation
and sensitivity-n draw their random subsets from the same seeded generator for every method,
non-sensitivity removes the features in memory order. ``evaluate`` runs every method on the same
batch, so such a metric would score the same perturbed inputs once per method.
:func:`sharing_scores` opens a scope in which :func:`lumos.metrics._prep.score_replaced` looks
its call up first: same model object, same input tensor (unchanged since), equal variants,
equal values, the same scoring. A hit returns a copy of the scores computed before, so the
values are exactly those of a fresh call. Outside the scope nothing is kept.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lumos.metrics._common import Scorer

#: Entries kept per scope (the oldest go first).
CAPACITY = 8


@dataclass
class _Entry:
    model: nn.Module
    x: Tensor
    version: int
    index: Tensor
    values: Tensor
    classes: Tensor
    softmax: bool
    fast: bool
    scores: Tensor

    def matches(self, model: nn.Module, x: Tensor, index: Tensor, values: Tensor,
                classes: Tensor, softmax: bool, fast: bool) -> bool:
        return (self.model is model and self.x is x and self.version == x._version
                and self.softmax == softmax and self.fast == fast
                and self.index.shape == index.shape and self.values.shape == values.shape
                and torch.equal(self.classes, classes) and torch.equal(self.index, index)
                and torch.equal(self.values, values))


_scope: contextvars.ContextVar[list[_Entry] | None] = contextvars.ContextVar(
    "lumos_metrics_shared_scores", default=None)


@contextlib.contextmanager
def sharing_scores() -> Iterator[None]:
    """Within the block, equal calls of ``score_replaced`` share their scores."""
    token = _scope.set([])
    try:
        yield
    finally:
        _scope.reset(token)


def _classes(scorer: Scorer) -> Tensor | None:
    """The scored class per sample, or ``None`` when the scoring is not a plain class index
    (a callable target: not shared)."""
    return scorer.target.classes


def lookup(model: nn.Module, x: Tensor, index: Tensor, values: Tensor, scorer: Scorer,
           fast: bool) -> Tensor | None:
    """A copy of the scores of an equal earlier call in the open scope, else ``None``."""
    entries, classes = _scope.get(), _classes(scorer)
    if entries is None or classes is None:
        return None
    for entry in entries:
        if entry.matches(model, x, index, values, classes, scorer.softmax, fast):
            return entry.scores.clone()
    return None


def store(model: nn.Module, x: Tensor, index: Tensor, values: Tensor, scorer: Scorer,
          fast: bool, scores: Tensor) -> None:
    """Keep ``scores`` for later equal calls while a scope is open."""
    entries, classes = _scope.get(), _classes(scorer)
    if entries is None or classes is None:
        return
    entries.append(_Entry(model, x, x._version, index.clone(), values.clone(), classes.clone(),
                          scorer.softmax, fast, scores.clone()))
    del entries[:-CAPACITY]
