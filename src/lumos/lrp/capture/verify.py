"""The guard that a prepared model reproduces the model, and where it first does not.

Folding reorders float arithmetic, so the bound depends on precision: a wrong graph differs by
O(1) of the output's scale, rounding by far less. When the output differs, the prepared graph is
run node by node and each node that stands for a captured one is compared with the value the
capture saw there; the first that differs is named in the error (its module path, source line
and relative difference).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, fx

from lumos.lrp.capture.values import MUTATED, SOURCE, VALUE, format_line
from lumos.lrp.errors import LRPUnsupportedError


def tolerance(t: Tensor) -> float:
    """Allowed error relative to the output's scale, for ``t``'s dtype and device.

    float64 allows 1e-5: deep networks whose activations grow by orders of magnitude (BatchNorm
    without its mean, as in the conservation tests) cancel so much that a folded BatchNorm moves
    the output by a few 1e-6 of its scale; a lost branch moves it by far more."""
    if t.dtype == torch.float64:
        return 1e-5
    low = t.dtype in (torch.float16, torch.bfloat16)
    tf32 = t.device.type == "cuda" and (torch.backends.cudnn.allow_tf32
                                        or torch.backends.cuda.matmul.allow_tf32)
    return 5e-2 if low or tf32 else 1e-3


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
                     origin: dict[str, str]) -> None:
    """Raise when ``gm`` does not compute ``expected`` (the eval-mode model's scores) on
    ``example``, naming by how much and the first node whose output differs."""
    with torch.no_grad():
        got = gm(example)
    if not isinstance(expected, Tensor):
        return
    rel = relative_difference(got, expected)
    if rel is not None and rel <= tolerance(expected):
        return
    how = (f"shape {tuple(got.shape)} instead of {tuple(expected.shape)}"
           if isinstance(got, Tensor) and got.shape != expected.shape
           else f"a largest difference of {rel:.3g} of the output's scale (allowed "
                f"{tolerance(expected):.0e})")
    raise LRPUnsupportedError(
        f"the prepared model does not reproduce the model's output on the example: {how}"
        f"{first_difference(gm, example, origin)}. Please report it with the model's code; "
        "meanwhile the model cannot be explained with LRP")


def first_difference(gm: fx.GraphModule, example: Tensor, origin: dict[str, str]) -> str:
    """``"; the first node that differs is ..."`` (empty when every node agrees)."""
    interpreter = _Recorder(gm, origin)
    with torch.no_grad():
        try:
            interpreter.run(example)
        except Exception as err:   # an operation that fails on the example
            return f"; the prepared graph fails at {interpreter.last}: {err}"
    return interpreter.found


class _Recorder(fx.Interpreter):
    """Runs a prepared graph and remembers the first node whose value differs from the one
    the capture saw."""

    def __init__(self, gm: fx.GraphModule, origin: dict[str, str]) -> None:
        super().__init__(gm)
        self.origin, self.found, self.last = origin, "", "<input>"

    def run_node(self, n: fx.Node) -> Any:
        self.last = self._describe(n)
        out = super().run_node(n)
        if not self.found and VALUE in n.meta and not n.meta.get(MUTATED):
            rel = relative_difference(out, n.meta[VALUE])
            want = n.meta[VALUE]
            if rel is not None and rel > tolerance(want):
                self.found = (f"; the first node that differs is {self._describe(n)}, by "
                              f"{rel:.3g} of its scale")
        return out

    def _describe(self, n: fx.Node) -> str:
        what = f"'{self.origin.get(str(n.target), n.target)}'" if n.op == "call_module" \
            else f"{n.op} {getattr(n.target, '__name__', n.target)}"
        line = format_line(n.meta.get(SOURCE))
        return what + (f" ({line})" if line else "")


__all__ = ["check_reproduces", "first_difference", "relative_difference", "tolerance"]
