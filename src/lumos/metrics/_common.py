"""Shared plumbing of the metrics: input checks, scoring a model output, batched forwards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import Target, TargetLike
from lumos.explanation import Explanation

Score = Literal["logit", "softmax"]
#: An explanation method as the metrics call it: ``(inputs, target) -> attribution``.
ExplainFn = Callable[[Tensor, Any], Tensor]


class Attributor(Protocol):
    """Anything with lumos's ``attribute(x, target=...)`` method."""

    def attribute(self, inputs: Tensor, target: TargetLike = ...) -> Tensor: ...


def as_explain_fn(method: ExplainFn | Attributor) -> ExplainFn:
    """Accept an attributor object or a plain ``(x, target) -> attribution`` function.

    A method may also return an :class:`~lumos.explanation.Explanation` (``.explain``); the
    metrics use its attribution.
    """
    attribute = getattr(method, "attribute", None)
    if callable(attribute):
        return lambda x, t: attribute(x, target=t)
    if not callable(method):
        raise TypeError(f"a method must be callable as (inputs, target) or have .attribute(); "
                        f"got {type(method).__name__}")

    def explain(x: Tensor, target: Any) -> Tensor:
        value = method(x, target)
        return value.attribution if isinstance(value, Explanation) else value

    return explain


def check_attribution(x: Tensor, attribution: object) -> Tensor:
    """Validate ``attribution`` against the input ``x`` it explains.

    It must be finite and shaped like ``x``; for inputs with channels ``(N, C, ...)`` a
    channel-summed attribution ``(N, 1, ...)`` is accepted too.
    """
    attribution = check_input(attribution, "attribution")
    channel_summed = (x.dim() >= 3 and attribution.dim() == x.dim() and attribution.shape[1] == 1
                      and attribution.shape[2:] == x.shape[2:]
                      and attribution.shape[0] == x.shape[0])
    if attribution.shape != x.shape and not channel_summed:
        raise ValueError(f"attribution has shape {tuple(attribution.shape)} but the input has "
                         f"shape {tuple(x.shape)}; they must match")
    return attribution


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise a clear error when a string option is not one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int >= 1, else raise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class Scorer:
    """Maps model outputs of any subset of the samples to one score per row.

    Parameters
    ----------
    target:
        The user's target (see :mod:`lumos.attribution.targets`).
    n:
        Number of samples.
    score:
        ``"logit"`` scores the raw output, ``"softmax"`` the class probability.
    """

    def __init__(self, target: TargetLike, n: int, score: Score = "logit") -> None:
        check_choice("score", score, ("logit", "softmax"))
        self.target = target if isinstance(target, Target) else Target(target, n)
        self.softmax = score == "softmax"
        self._index: Tensor | None = None

    def __call__(self, output: Tensor, rows: Tensor) -> Tensor:
        """Scores of ``output``, whose row ``i`` belongs to sample ``rows[i]``."""
        if self.softmax:
            if output.dim() != 2:
                raise ValueError(f"score='softmax' needs a model output of shape (N, classes); "
                                 f"got {tuple(output.shape)}")
            output = output.softmax(1)
        index = self.target.classes
        if index is None:
            return self.target.score(output)
        if self._index is None or self._index.device != output.device:
            self.target.check(output)
            self._index = index.to(output.device)
        return output.gather(1, self._index[rows][:, None])[:, 0]


def forward_scores(model: nn.Module, build: Callable[[slice], Tensor], rows: Tensor,
                   scorer: Scorer, batch_size: int, *, fast: bool = True) -> Tensor:
    """Model scores of many inputs, in chunks of ``batch_size``, without autograd.

    ``build(chunk)`` returns the inputs ``chunk`` (a slice of ``0..len(rows)``; a view where
    possible) and input ``i`` belongs to sample ``rows[i]``. Building per chunk keeps memory
    at one chunk. With ``fast`` the model runs as :func:`lumos.metrics._fast.scoring_model`
    (scores equal up to float rounding); metrics that rank or threshold scores pass
    ``fast=False`` to get the model's own rounding (:func:`lumos.metrics._fast.exact_model`).
    """
    from lumos.metrics._fast import exact_model, scoring_model

    out = []
    run: nn.Module | None = None
    with torch.inference_mode():
        for lo in range(0, rows.shape[0], batch_size):
            chunk = slice(lo, lo + batch_size)
            inputs = build(chunk)
            run = run or (scoring_model if fast else exact_model)(model, inputs)
            out.append(scorer(run(inputs), rows[chunk]))
    if not out:
        return torch.zeros(0, device=rows.device)
    return torch.cat(out)


def model_outputs(model: nn.Module, x: Tensor, batch_size: int = 256, *,
                  fast: bool = True) -> Tensor:
    """``model(x)`` in chunks of ``batch_size``, without autograd; with ``fast`` through
    :func:`lumos.metrics._fast.scoring_model` (outputs equal up to float rounding), else through
    :func:`lumos.metrics._fast.exact_model` (the model's own outputs)."""
    from lumos.metrics._fast import exact_model, scoring_model

    check_positive_int("batch_size", batch_size)
    run = (scoring_model if fast else exact_model)(model, x) if x.shape[0] else model
    with torch.inference_mode():
        if not x.shape[0]:
            return run(x)
        return torch.cat([run(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def predictions(model: nn.Module, x: Tensor, batch_size: int = 256) -> Tensor:
    """The predicted class of every input ``(N,)`` (argmax of the output)."""
    return model_outputs(model, x, batch_size).argmax(1)
