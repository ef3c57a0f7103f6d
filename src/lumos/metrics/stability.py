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
from lumos.metrics._common import check_positive_int, model_outputs
from lumos.metrics._prep import explain_fn, relevance
from lumos.metrics.robustness import (
    Forward,
    Perturbed,
    _reduce_over,
    perturbed_explanations,
    uniform_noise,
)


def _relative(change: Tensor, base: Tensor, eps: float) -> Tensor:
    return change / (base + (base == 0) * eps)


def _floor(norm: Tensor, eps: float) -> Tensor:
    return norm + (norm == 0) * eps


def _values(p: Perturbed) -> Tensor:
    """The per-input values the ``forward`` of a stability metric computed."""
    assert p.values is not None
    return p.values


def _layer_names(model: nn.Module, layers: Sequence[str] | None) -> list[str]:
    modules = dict(model.named_modules())
    names = list(layers) if layers is not None else [
        n for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    unknown = [n for n in names if n not in modules]
    if unknown or not names:
        raise ValueError(f"no module named {unknown[0] if unknown else '(none)'!r}; modules: "
                         f"{[n for n in modules if n][:20]}")
    return names


def _hooked(model: nn.Module, x: Tensor, names: list[str],
            each: Callable[[int, Tensor], None]) -> Tensor:
    """Run ``model(x)`` without autograd, calling ``each(i, output)`` with the output of the
    ``i``-th module of ``names`` flattened per input ``(N, F_i)``; returns the model output.

    The hooks go on :func:`lumos.metrics._fast.exact_model`'s copy where there is one (the
    same modules by name, the same values)."""
    from lumos.metrics._fast import exact_model

    model = exact_model(model, x)
    modules = dict(model.named_modules())
    seen = [0]

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, Tensor):
            each(seen[0], output.detach().reshape(x.shape[0], -1))
            seen[0] += 1

    handles = [modules[n].register_forward_hook(hook) for n in names]
    try:
        with torch.inference_mode():
            return model(x)
    finally:
        for h in handles:
            h.remove()


def representation(model: nn.Module, x: Tensor, layers: Sequence[str] | None = None) -> Tensor:
    """Outputs of ``layers`` (default: every leaf module) for ``x``, flattened and concatenated
    per sample ``(N, F)``."""
    captured: list[Tensor] = []
    _hooked(model, x, _layer_names(model, layers), lambda _, out: captured.append(out))
    return torch.cat(captured, 1).double()


def _stability(model: nn.Module, inputs: Tensor, attribution: Tensor | None,
               target: TargetLike, explain: Any, n_samples: int, lower_bound: float,
               upper_bound: float, eps: float, exclude_changed: bool,
               generator: torch.Generator | None, explain_batch: int,
               denominator: Callable[[Perturbed], Tensor], forward: Forward | None = None,
               clean: Tensor | None = None) -> Tensor:
    x = check_input(inputs)
    check_positive_int("n_samples", n_samples)
    base = explain_fn(explain)(x, target) if attribution is None else attribution
    a = relevance(x, base)
    noise = uniform_noise(x, lower_bound, upper_bound, generator)
    values, changed = [], []
    for p in perturbed_explanations(model, x, target, explain, lambda: x + noise(), n_samples,
                                    explain_batch, flags=exclude_changed, forward=forward,
                                    clean=clean):
        b = relevance(x, p.attribution)
        top = _relative(a - b, a, eps).norm(dim=1)
        values.append(top / _floor(denominator(p).to(top.device), eps))
        changed.append(p.changed)
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
    flat = check_input(inputs).reshape(inputs.shape[0], -1).double()

    def denominator(p: Perturbed) -> Tensor:
        return _relative(flat - p.inputs.reshape(flat.shape).double(), flat, eps).norm(dim=1)

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
    clean = model_outputs(model, x, explain_batch, fast=False)
    reference = clean.reshape(x.shape[0], -1).double()

    def forward(moved: Tensor) -> tuple[Tensor, Tensor]:
        out = model_outputs(model, moved, explain_batch, fast=False)
        change = reference.repeat(moved.shape[0] // x.shape[0], 1) - out.reshape(
            moved.shape[0], -1).double()
        return out, change.norm(dim=1)

    return _stability(model, x, attribution, target, explain, n_samples, lower_bound,
                      upper_bound, eps, exclude_changed, generator, explain_batch,
                      _values, forward, clean.argmax(1))


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
    names = _layer_names(model, layers)
    clean: list[Tensor] = []
    output = _hooked(model, x, names, lambda _, out: clean.append(out))
    floors = [c + (c == 0) * eps for c in clean]

    def forward(moved: Tensor) -> tuple[Tensor, Tensor]:
        count = moved.shape[0] // x.shape[0]
        total = torch.zeros(moved.shape[0], dtype=torch.float64, device=moved.device)

        # one layer's relative change: its norm in the layer's dtype (float32: about 1e-7
        # relative, 30x faster than accumulating in float64), squared and summed in float64
        def add(i: int, out: Tensor) -> None:
            change = (clean[i] - out.reshape(count, *clean[i].shape)).div_(floors[i])
            total.add_(torch.linalg.vector_norm(change, dim=-1).double().square().reshape(-1))

        return _hooked(model, moved, names, add), total.sqrt()

    return _stability(model, x, attribution, target, explain, n_samples, lower_bound,
                      upper_bound, eps, exclude_changed, generator, explain_batch,
                      _values, forward, output.argmax(1))


for _fn in (relative_input_stability, relative_output_stability,
            relative_representation_stability):
    _fn.__doc__ = (_fn.__doc__ or "") + _OPTIONS
