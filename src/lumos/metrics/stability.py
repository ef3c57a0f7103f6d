"""Relative stability (Agarwal et al. 2022, "Rethinking stability for attribution-based
explanations"): the explanation's relative change over the relative change of the input
(:func:`relative_input_stability`), of the model's output (:func:`relative_output_stability`)
or of its internal representation (:func:`relative_representation_stability`), maximised over
noisy copies of the input that keep the predicted class. Lower is better.

Relative changes divide entry-wise by the original value, with ``eps`` standing in for exact
zeros (a digit's background, for instance), so maps with many zeros give large values: compare
methods, not absolute numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import TargetLike
from lumos.metrics._common import check_positive_int
from lumos.metrics._prep import explain_fn, relevance
from lumos.metrics.robustness import _reduce_over, perturbed_explanations, uniform_noise


def _relative(change: Tensor, base: Tensor, eps: float) -> Tensor:
    return change / (base + (base == 0) * eps)


def _floor(norm: Tensor, eps: float) -> Tensor:
    return norm + (norm == 0) * eps


def representation(model: nn.Module, x: Tensor, layers: Sequence[str] | None = None) -> Tensor:
    """Outputs of ``layers`` (default: every leaf module) for ``x``, flattened and concatenated
    per sample ``(N, F)``."""
    modules = dict(model.named_modules())
    names = list(layers) if layers is not None else [
        n for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    unknown = [n for n in names if n not in modules]
    if unknown or not names:
        raise ValueError(f"no module named {unknown[0] if unknown else '(none)'!r}; modules: "
                         f"{[n for n in modules if n][:20]}")
    captured: list[Tensor] = []

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, Tensor):
            captured.append(output.detach().reshape(x.shape[0], -1))

    handles = [modules[n].register_forward_hook(hook) for n in names]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return torch.cat(captured, 1).double()


def _stability(model: nn.Module, inputs: Tensor, attribution: Tensor | None,
               target: TargetLike, explain: Any, n_samples: int, lower_bound: float,
               upper_bound: float, eps: float, exclude_changed: bool,
               generator: torch.Generator | None, explain_batch: int,
               denominator: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    x = check_input(inputs)
    check_positive_int("n_samples", n_samples)
    base = explain_fn(explain)(x, target) if attribution is None else attribution
    a = relevance(x, base)
    noise = uniform_noise(x, lower_bound, upper_bound, generator)
    values, changed = [], []
    for moved_x, moved, flip in perturbed_explanations(model, x, target, explain,
                                                       lambda: x + noise(), n_samples,
                                                       explain_batch):
        b = relevance(x, moved)
        top = _relative(a - b, a, eps).norm(dim=1)
        values.append(top / _floor(denominator(x, moved_x).to(top.device), eps))
        changed.append(flip.cpu())
    return _reduce_over(values, changed, exclude_changed, "max").to(x.device)


_OPTIONS = """
    Parameters
    ----------
    explain:
        Re-explains the noisy inputs (an attributor or ``(inputs, target) -> attribution``);
        ``attribution`` is the explanation of ``inputs`` when already computed.
    n_samples, lower_bound, upper_bound:
        Draws of uniform noise in ``[lower_bound, upper_bound)`` added to the input (Quantus's
        defaults: 200, 0.02, 0.2).
    eps:
        Stands in for zeros in divisions.
    exclude_changed:
        Ignore draws that change the predicted class (default, as the paper); NaN when every
        draw does. Quantus 0.6 returns NaN as soon as one draw does.
"""


def relative_input_stability(model: nn.Module, inputs: Tensor,
                             attribution: Tensor | None = None, target: TargetLike = None, *,
                             explain: Any = None, n_samples: int = 200,
                             lower_bound: float = 0.02, upper_bound: float = 0.2,
                             eps: float = 1e-6, exclude_changed: bool = True,
                             generator: torch.Generator | None = None,
                             explain_batch: int = 256) -> Tensor:
    """``max |(a - a')/a|_2 / |(x - x')/x|_2`` over noisy copies ``x'`` (lower is better)."""
    def denominator(x: Tensor, moved: Tensor) -> Tensor:
        flat, other = x.reshape(x.shape[0], -1).double(), moved.reshape(x.shape[0], -1).double()
        return _relative(flat - other, flat, eps).norm(dim=1)

    return _stability(model, inputs, attribution, target, explain, n_samples, lower_bound,
                      upper_bound, eps, exclude_changed, generator, explain_batch, denominator)


def relative_output_stability(model: nn.Module, inputs: Tensor,
                              attribution: Tensor | None = None, target: TargetLike = None, *,
                              explain: Any = None, n_samples: int = 200,
                              lower_bound: float = 0.02, upper_bound: float = 0.2,
                              eps: float = 1e-6, exclude_changed: bool = True,
                              generator: torch.Generator | None = None,
                              explain_batch: int = 256) -> Tensor:
    """``max |(a - a')/a|_2 / |h(x) - h(x')|_2`` with ``h`` the model's output (lower is
    better)."""
    x = check_input(inputs)
    with torch.inference_mode():
        clean = model(x).reshape(x.shape[0], -1).double()

    def denominator(_: Tensor, moved: Tensor) -> Tensor:
        with torch.inference_mode():
            out = model(moved).reshape(moved.shape[0], -1).double()
        return (clean - out).norm(dim=1)

    return _stability(model, x, attribution, target, explain, n_samples, lower_bound,
                      upper_bound, eps, exclude_changed, generator, explain_batch, denominator)


def relative_representation_stability(model: nn.Module, inputs: Tensor,
                                      attribution: Tensor | None = None,
                                      target: TargetLike = None, *, explain: Any = None,
                                      layers: Sequence[str] | None = None,
                                      n_samples: int = 200, lower_bound: float = 0.02,
                                      upper_bound: float = 0.2, eps: float = 1e-6,
                                      exclude_changed: bool = True,
                                      generator: torch.Generator | None = None,
                                      explain_batch: int = 256) -> Tensor:
    """``max |(a - a')/a|_2 / |(L(x) - L(x'))/L(x)|_2`` with ``L`` the outputs of ``layers``
    (default: every leaf module, as Quantus's default of all layers) (lower is better)."""
    x = check_input(inputs)
    clean = representation(model, x, layers)

    def denominator(_: Tensor, moved: Tensor) -> Tensor:
        return _relative(clean - representation(model, moved, layers), clean, eps).norm(dim=1)

    return _stability(model, x, attribution, target, explain, n_samples, lower_bound,
                      upper_bound, eps, exclude_changed, generator, explain_batch, denominator)


for _fn in (relative_input_stability, relative_output_stability,
            relative_representation_stability):
    _fn.__doc__ = (_fn.__doc__ or "") + _OPTIONS
