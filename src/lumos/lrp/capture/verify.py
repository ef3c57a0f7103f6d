"""The guard that a prepared model reproduces the model, and where it first does not.

Folding reorders float arithmetic, so the prepared graph and the model differ by rounding; a
wrong graph (a lost branch) differs by what the branch adds. In float64 the bound follows how
badly the model's own arithmetic is conditioned on the example (:class:`Conditioning`): rounding
moves the output by a few units of the epsilon times the larger of (a) the largest intermediate
value over the output's scale (activations of 1e7 that a BatchNorm brings back to order 1) and
(b) how much the output moves relative to its scale per unit of relative change of the input
(deep random networks amplify any perturbation, rounding included). A model that stays near its
output's scale is checked to ~1e-12 of it; badly conditioned ones get what they need. float32
follows the same rule between a floor (1e-3, enough for a model that does not amplify rounding)
and a cap (5e-3, which still refuses a lost branch adding 1e-2 of the output); the model's
sensitivity is measured there (on a float64 copy) only when the output differs by more than the
floor. When the output differs, the prepared graph is run node by node and each node that stands
for a captured one is compared with the value the capture saw there; the first that differs is
named in the error (its module path, source line and relative difference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, fx

from lumos.lrp.capture.values import MUTATED, SOURCE, VALUE, format_line
from lumos.lrp.errors import LRPUnsupportedError

#: Units of the dtype's epsilon allowed per unit of growth (see :func:`tolerance`).
ROUNDING_UNITS = 1000.0
#: The loosest float64 bound, whatever the growth: float32's floor.
FLOAT64_CAP = 1e-3
#: The tightest float32 bound: rounding of a model that does not amplify it (folded BatchNorms,
#: reordered sums) stays well below.
FLOAT32_FLOOR = 1e-3
#: The loosest float32 bound, whatever the growth: a graph that lost a branch adding 1e-2 of the
#: output is still refused.
FLOAT32_CAP = 5e-3
#: The relative change of the input by which :func:`sensitivity` probes the model, in units of
#: the dtype's epsilon: far above rounding, far below where a network stops being linear.
PROBE_UNITS = 1e4


def tolerance(t: Tensor, growth: float = 1.0) -> float:
    """Allowed ``max|difference|`` relative to ``max|t|``, for ``t``'s dtype and device.

    Parameters
    ----------
    t : Tensor
        The value compared (the output, or one node's value).
    growth : float
        How much the model's arithmetic amplifies rounding relative to ``max|t|``
        (:meth:`Conditioning.growth`); 1 when unknown.

    :data:`ROUNDING_UNITS` times the dtype's epsilon times ``max(growth, 1)``: in float64 at
    most :data:`FLOAT64_CAP`; in float32 between :data:`FLOAT32_FLOOR` and :data:`FLOAT32_CAP`.
    Half precision and TF32 keep a fixed 5e-2."""
    low = t.dtype in (torch.float16, torch.bfloat16)
    tf32 = t.device.type == "cuda" and t.dtype == torch.float32 and (
        torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)
    if low or tf32:
        return 5e-2
    if t.dtype not in (torch.float64, torch.float32):
        return FLOAT32_FLOOR
    rounding = ROUNDING_UNITS * torch.finfo(t.dtype).eps * max(growth, 1.0)
    if t.dtype == torch.float64:
        return min(FLOAT64_CAP, rounding)
    return min(FLOAT32_CAP, max(FLOAT32_FLOOR, rounding))


@dataclass(frozen=True)
class Conditioning:
    """How much a model's arithmetic on the example amplifies rounding (see the module
    docstring).

    Attributes
    ----------
    largest : float
        The largest ``|value|`` of a floating-point tensor the capture recorded.
    sensitivity : float
        ``max|f(x') - f(x)| / max|f(x)|`` over the relative change from ``x`` to ``x'``
        (:func:`sensitivity`).
    """

    largest: float = 0.0
    sensitivity: float = 1.0

    def growth(self, t: Tensor) -> float:
        """The growth by which :func:`tolerance` scales for a value ``t`` of the program."""
        scale = float(t.detach().abs().max()) if t.is_floating_point() and t.numel() else 0.0
        return max(self.sensitivity, self.largest / scale if scale > 0 else 1.0, 1.0)


def magnitude(graph: fx.Graph) -> float:
    """The largest ``|value|`` of a floating-point tensor among the example's values that the
    nodes of a capture carry (0.0 when none)."""
    largest = 0.0
    for node in graph.nodes:
        for value in _tensors(node.meta.get(VALUE)):
            if value.is_floating_point() and value.numel():
                largest = max(largest, float(value.detach().abs().max()))
    return largest


def _tensors(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def sensitivity(scores: Callable[[Tensor], Any], example: Tensor) -> float:
    """How much ``scores`` (the model) moves relative to its scale per unit of relative change
    of ``example``: each element scaled by ``1 +- PROBE_UNITS * eps`` (fixed random signs).
    Measured in float64 only (1.0 otherwise; a float32 model is measured on its float64 copy:
    :func:`wide_sensitivity`)."""
    if example.dtype != torch.float64:
        return 1.0
    delta = PROBE_UNITS * torch.finfo(example.dtype).eps
    signs = torch.randint(0, 2, example.shape, generator=torch.Generator().manual_seed(0))
    probe = example * (1 + delta * (2 * signs - 1).to(example))
    base, moved = scores(example), scores(probe)
    if not (isinstance(base, Tensor) and isinstance(moved, Tensor)) or not base.numel():
        return 1.0
    scale = float(base.abs().max())
    return float((moved - base).abs().max()) / (delta * scale) if scale > 0 else 1.0


def wide_sensitivity(widen: Callable[[], Callable[[Tensor], Any]], example: Tensor) -> float:
    """:func:`sensitivity` of a float32 model measured on the float64 copy ``widen`` makes: a
    float32 probe would move the output by as much as rounding does on a model that amplifies
    it. 1.0 when the model cannot run in float64 (a float32 constant made in its forward)."""
    try:
        return sensitivity(widen(), example.double())
    except Exception:   # whatever the model raises in float64: no growth is known
        return 1.0


def relative_difference(got: Any, want: Any) -> float | None:
    """``max|got - want| / max|want|`` for two tensors of one shape; None when not comparable
    (inf when the shapes differ)."""
    if not (isinstance(got, Tensor) and isinstance(want, Tensor)):
        return None
    if got.shape != want.shape:
        return float("inf")
    if not want.is_floating_point():
        return 0.0 if torch.equal(got, want) else float("inf")
    scale = want.detach().abs().max().clamp_min(torch.finfo(want.dtype).tiny)
    return float((got.detach() - want.detach()).abs().max() / scale)


def check_reproduces(gm: fx.GraphModule, example: Tensor, expected: Any,
                     origin: dict[str, str], conditioning: Conditioning | None = None,
                     measure: Callable[[], float] | None = None) -> float:
    """Raise when ``gm`` does not compute ``expected`` (the eval-mode model's scores) on
    ``example``, naming by how much and the first node whose output differs. Returns the
    output's growth (:meth:`Conditioning.growth`), by which later checks of the same graph
    scale their bound.

    ``measure`` gives the model's sensitivity where ``conditioning`` could not (float32: see
    :func:`wide_sensitivity`); it is called only when the output differs by more than the bound
    without it and by no more than the loosest bound."""
    conditioning = conditioning or Conditioning()
    with torch.no_grad():
        got = gm(example)
    if not isinstance(expected, Tensor):
        return 1.0
    growth = conditioning.growth(expected)
    rel = relative_difference(got, expected)
    if measure is not None and rel is not None and \
            tolerance(expected, growth) < rel <= tolerance(expected, float("inf")):
        conditioning = replace(conditioning, sensitivity=measure())
        growth = conditioning.growth(expected)
    if rel is not None and rel <= tolerance(expected, growth):
        return growth
    how = (f"shape {tuple(got.shape)} instead of {tuple(expected.shape)}"
           if isinstance(got, Tensor) and got.shape != expected.shape
           else f"a largest difference of {rel:.3g} of the output's scale (allowed "
                f"{tolerance(expected, growth):.1e})")
    raise LRPUnsupportedError(
        f"the prepared model does not reproduce the model's output on the example: {how}"
        f"{first_difference(gm, example, origin, conditioning)}. Please report it with the "
        "model's code; meanwhile the model cannot be explained with LRP")


def first_difference(gm: fx.GraphModule, example: Tensor, origin: dict[str, str],
                     conditioning: Conditioning | None = None) -> str:
    """``"; the first node that differs is ..."`` (empty when every node agrees)."""
    interpreter = _Recorder(gm, origin, conditioning or Conditioning())
    with torch.no_grad():
        try:
            interpreter.run(example)
        except Exception as err:   # an operation that fails on the example
            return f"; the prepared graph fails at {interpreter.last}: {err}"
    return interpreter.found


class _Recorder(fx.Interpreter):
    """Runs a prepared graph and remembers the first node whose value differs from the one
    the capture saw."""

    def __init__(self, gm: fx.GraphModule, origin: dict[str, str],
                 conditioning: Conditioning) -> None:
        super().__init__(gm)
        self.origin, self.conditioning, self.found, self.last = origin, conditioning, "", "<input>"

    def run_node(self, n: fx.Node) -> Any:
        self.last = self._describe(n)
        out = super().run_node(n)
        if not self.found and VALUE in n.meta and not n.meta.get(MUTATED):
            rel = relative_difference(out, n.meta[VALUE])
            want = n.meta[VALUE]
            if rel is not None and rel > tolerance(want, self.conditioning.growth(want)):
                self.found = (f"; the first node that differs is {self._describe(n)}, by "
                              f"{rel:.3g} of its scale")
        return out

    def _describe(self, n: fx.Node) -> str:
        what = f"'{self.origin.get(str(n.target), n.target)}'" if n.op == "call_module" \
            else f"{n.op} {getattr(n.target, '__name__', n.target)}"
        line = format_line(n.meta.get(SOURCE))
        return what + (f" ({line})" if line else "")


__all__ = ["FLOAT32_CAP", "FLOAT32_FLOOR", "FLOAT64_CAP", "PROBE_UNITS", "ROUNDING_UNITS",
           "Conditioning", "check_reproduces", "first_difference", "magnitude",
           "relative_difference", "sensitivity", "tolerance", "wide_sensitivity"]
