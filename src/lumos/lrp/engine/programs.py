"""The prepared programs an :class:`~lumos.lrp.engine.lrp.LRP` keeps, one per input size.

A prepared graph holds for the input size it was captured on (:func:`lumos.lrp.prepare`), and
for every batch size unless the model read the batch size as a number. :class:`Programs` keeps
the last :data:`PROGRAMS_KEPT` of them, re-prepares all when the user's model changes (a
parameter or buffer replaced, resized, moved or modified in place, a submodule swapped), and
checks a program once per new batch size against the model itself: a graph that does not
reproduce the model at that batch size is prepared again for it.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, fx, nn

from lumos._pooling import SlicedMaxPool2d, channels_last_pool, swap_pools
from lumos.lrp import composites as comp
from lumos.lrp.engine.program import Program

#: Prepared programs kept per :class:`~lumos.lrp.engine.lrp.LRP` (input sizes, batch sizes).
PROGRAMS_KEPT = 4


def fingerprint(model: nn.Module) -> tuple[Any, ...]:
    """Cheap identity of everything preparation reads: tensors, their versions, the modules."""
    tensors = tuple((id(t), t._version, t.data_ptr(), t.dtype, t.device, tuple(t.shape))
                    for t in itertools.chain(model.parameters(), model.buffers()))
    return tensors, tuple(id(m) for m in model.modules())


def _prepare(model: nn.Module, example: Tensor) -> fx.GraphModule:
    from lumos.lrp.capture.prepare import prepare

    gm = prepare(model, example)
    if example.device.type == "cpu":  # oneDNN convolutions are faster with channels-last weights
        for module in gm.modules():
            if isinstance(module, nn.Conv2d):   # a new tensor: the user's weight is not touched
                module.weight = nn.Parameter(module.weight.detach().contiguous(
                    memory_format=torch.channels_last), requires_grad=False)
        # same values and winners as the model's pooling, several times faster on the CPU
        swap_pools(gm, channels_last_pool, lambda pool: type(pool) is nn.MaxPool2d)
    return gm


class Programs:
    """Prepared programs of one model and composite, most recently used last."""

    def __init__(self, model: nn.Module, composite: comp.Composite) -> None:
        self.model, self.composite = model, composite
        self._programs: OrderedDict[tuple[Any, ...], Program] = OrderedDict()
        self._key: tuple[Any, ...] | None = None
        self._reference: nn.Module | None = None   # the model's private copy for the checks
        #: The program used last.
        self.last: Program | None = None

    def __len__(self) -> int:
        return len(self._programs)

    def get(self, x: Tensor) -> Program:
        """The program for inputs shaped like ``x`` (prepared on its first sample if new)."""
        key = fingerprint(self.model)
        if key != self._key:
            self._programs.clear()
            self._key, self._reference = key, None
        shape = tuple(x.shape[1:])
        slot: tuple[Any, ...] = (shape, len(x)) if (shape, len(x)) in self._programs \
            else (shape, None)
        program = self._programs.get(slot)
        if program is None:
            program = self._add(x[:1])
            if program.batch is not None and program.batch != len(x):
                program = self._add(x)
            slot = (shape, program.batch)
        self._programs.move_to_end(slot)
        self.last = program
        return program

    def _add(self, example: Tensor, batch: int | None = None) -> Program:
        program = Program(_prepare(self.model, example.detach()), self.composite)
        program.verified.add(len(example))
        if batch is not None:
            program.batch = batch
        self._programs[(tuple(example.shape[1:]), program.batch)] = program
        while len(self._programs) > PROGRAMS_KEPT:
            self._programs.popitem(last=False)
        return program

    def check(self, program: Program, x: Tensor, scores: Tensor) -> Program | None:
        """None when ``program``'s ``scores`` on ``x`` are the model's (checked once per batch
        size); else a program prepared for ``x``'s batch size, to run instead."""
        n = len(x)
        if n in program.verified:
            return None
        from lumos.lrp.capture.prepare import reference_scores
        from lumos.lrp.capture.private import private_copy
        from lumos.lrp.capture.verify import relative_difference, tolerance

        if self._reference is None:   # one per state of the model; its pooling the same
            self._reference = private_copy(self.model)   # values, faster (no gradients)
            swap_pools(self._reference, SlicedMaxPool2d)
        expected = reference_scores(self._reference, x.detach())
        rel = relative_difference(scores.detach(), expected)
        growth = getattr(program.gm, "lumos_growth", 1.0)
        if rel is not None and rel <= tolerance(expected, growth):
            program.verified.add(n)
            return None
        self.last = fresh = self._add(x, batch=n)   # the batch size is part of the graph
        return fresh

__all__ = ["PROGRAMS_KEPT", "Programs", "fingerprint"]
