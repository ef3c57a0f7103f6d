"""Explain a batch with every method, measure the explanations, time them.

Shared by ``lumos demo``, ``lumos reproduce`` and ``lumos explain``: the functions here take a
model, inputs and targets and return plain results; :mod:`lumos.experiments.sections` turns them
into report sections.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from lumos.experiments.methods import Domain, Method, MethodUnavailable, build
from lumos.explanation import Explanation

T = TypeVar("T")


class Progress:
    """Progress lines on stderr (silent with ``quiet``): one line per stage, a counter per item."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.start = time.perf_counter()

    def say(self, message: str) -> None:
        """One line, prefixed with the elapsed time."""
        if not self.quiet:
            print(f"[{time.perf_counter() - self.start:6.1f}s] {message}", file=sys.stderr,
                  flush=True)

    def items(self, items: Sequence[T], what: str) -> Iterator[T]:
        """Yield ``items`` under a progress bar labelled ``what`` (drawn on a terminal or in a
        notebook only: :meth:`say` writes the summary line)."""
        from lumos.progress import Progress as Bar

        with Bar(len(items), what, enabled=not self.quiet, summary=False) as bar:
            for item in items:
                yield item
                bar.update(1)


@dataclass
class Result:
    """One method on one batch: the explanation (or why it is missing) and the seconds spent."""

    method: Method
    explanation: Explanation | None = None
    seconds: float = math.nan
    error: str = ""
    device: str = "cpu"  # where it ran (for the runtime caption)


@dataclass
class Measured:
    """Faithfulness of one method on the evaluation batch."""

    morf: Tensor  # (N, steps + 1) MoRF curves
    lerf: Tensor  # (N, steps + 1) LeRF curves
    axiom: Tensor | None = None  # (N,) relative axiom gap
    extra: dict[str, Tensor] = field(default_factory=dict)


def batches(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most ``size`` covering ``range(n)``."""
    return [slice(i, min(i + size, n)) for i in range(0, n, max(1, size))]


def _concat(parts: list[Explanation]) -> Explanation:
    first = parts[0]
    if len(parts) == 1:
        return first

    def cat(name: str) -> Tensor | None:
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else torch.cat(values)

    layers = {k: torch.cat([p.layers[k] for p in parts]) for k in first.layers
              if all(k in p.layers for p in parts)}
    return Explanation(attribution=torch.cat([p.attribution for p in parts]),
                       output=torch.cat([p.output for p in parts]), method=first.method,
                       target=cat("target"), delta=cat("delta"),
                       baseline_output=cat("baseline_output"), n_steps=cat("n_steps"),
                       converged=cat("converged"), error=cat("error"),
                       layers=layers)


def explain_all(model: nn.Module, x: Tensor, target: Tensor, methods: Iterable[Method],
                domain: Domain, options: dict[str, dict[str, Any]] | None = None,
                batch_size: int = 32, progress: Progress | None = None) -> dict[str, Result]:
    """Run every method on ``x`` (in batches); a method that cannot run is kept with its reason.

    ``options[key]`` holds settings for the method ``key`` (see
    :func:`lumos.experiments.methods.build`).
    """
    progress = progress or Progress(quiet=True)
    results: dict[str, Result] = {}
    for method in methods:
        try:
            fn = build(method, model, domain, (options or {}).get(method.key))
        except MethodUnavailable as err:
            results[method.key] = Result(method, error=str(err))
            progress.say(f"skipped {method.title}: {err}")
            continue
        parts: list[Explanation] = []
        begin = time.perf_counter()
        try:
            for rows in progress.items(batches(len(x), batch_size), method.title):
                parts.append(fn(x[rows], target[rows]).detach())
        except Exception as err:  # one failing method must not take the others down
            reason = f"it failed on this model: {type(err).__name__}: {err}"
            results[method.key] = Result(method, error=reason)
            progress.say(f"skipped {method.title}: {reason}")
            continue
        synchronize(x.device)  # GPU work is queued: wait for it before reading the clock
        seconds = time.perf_counter() - begin
        results[method.key] = Result(method, _concat(parts), seconds, device=str(x.device))
        progress.say(f"{method.title}: {len(x)} inputs in {seconds:.2f} s")
    return results


def synchronize(device: torch.device) -> None:
    """Wait until the work queued on ``device`` is done (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def axiom_gap(exp: Explanation) -> Tensor | None:
    """Relative axiom gap per sample: IG ``|delta| / |f(x) - f(x')|``, LRP ``|delta| / |f(x)|``.

    ``None`` when the method reports no axiom.
    """
    if exp.delta is None:
        return None
    scale = exp.output if exp.baseline_output is None else exp.output - exp.baseline_output
    return exp.delta.abs() / scale.abs().clamp_min(1e-12)


def measure(model: nn.Module, x: Tensor, target: Tensor, attribution: Tensor,
            settings: dict[str, Any]) -> Measured:
    """MoRF and LeRF pixel-flipping curves (softmax score by default) for one attribution."""
    from lumos.metrics.perturbation import pixel_flipping

    kwargs = {"steps": settings.get("steps", 16), "patch": settings.get("patch", 1),
              "fill": settings.get("fill", 0.0), "score": settings.get("score", "softmax")}
    morf = pixel_flipping(model, x, attribution, target, order="morf", **kwargs)
    lerf = pixel_flipping(model, x, attribution, target, order="lerf", **kwargs)
    return Measured(morf=morf, lerf=lerf)


def random_attribution(x: Tensor, seed: int = 0) -> Tensor:
    """A reference attribution that knows nothing: uniform noise, one value per pixel."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((x.shape[0], 1, *x.shape[2:]), generator=gen).to(x)


def mean_se(values: Tensor) -> tuple[float, float]:
    """Mean and standard error of a 1-D tensor (standard error 0 for a single value)."""
    v = values.detach().double().flatten()
    v = v[torch.isfinite(v)]
    if v.numel() == 0:
        return math.nan, math.nan
    se = float(v.std() / math.sqrt(v.numel())) if v.numel() > 1 else 0.0
    return float(v.mean()), se


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    correct = 0
    with torch.inference_mode():
        for rows in batches(len(x), batch_size):
            correct += int((model(x[rows]).argmax(1) == y[rows]).sum())
    return correct / max(1, len(x))


def predict(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Top-1 class and its softmax probability per sample."""
    with torch.inference_mode():
        prob = torch.softmax(model(x), dim=1)
    score, label = prob.max(dim=1)
    return label, score
