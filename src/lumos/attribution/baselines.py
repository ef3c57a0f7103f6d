"""Baselines x' for path methods: the reference input that "explains nothing".

``resolve(spec, x)`` turns any accepted ``baselines`` argument into a list of tensors shaped like
``x`` (one entry per baseline; several entries are averaged by the attributor, which is the
expected-gradients estimate when they are drawn from a data set). Accepted specs:

- ``None`` or ``"zero"``: all zeros (Captum's default);
- a number: that constant everywhere;
- a tensor broadcastable to ``x`` (e.g. ``(C, 1, 1)`` channel means) or one per sample (same
  shape as ``x``);
- a callable ``x -> tensor`` (for example a custom blur);
- ``"blur"`` / :class:`Blur`: the input blurred with a Gaussian over its spatial dimensions;
- ``"uniform"`` / :class:`Uniform`: uniform noise within each sample's value range, seeded;
- :class:`Sampled`: ``k`` baselines per sample drawn from a reference set, seeded
  (expected gradients, Erion et al. 2021);
- a list or tuple of any of the above: each is used and the attributions are averaged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from lumos.attribution.checks import check_input


@dataclass(frozen=True)
class Blur:
    """The input blurred by a Gaussian of ``sigma`` elements over dims 2.. (H, W or length)."""

    sigma: float = 5.0

    def __call__(self, x: Tensor) -> Tensor:
        if self.sigma <= 0:
            raise ValueError(f"Blur sigma must be positive, got {self.sigma}")
        if x.dim() < 3:
            raise ValueError(f"a blur baseline needs spatial dimensions (N, C, ...); the input "
                             f"has shape {tuple(x.shape)}")
        out = x
        for dim in range(2, x.dim()):
            out = _blur_along(out, dim, self.sigma)
        return out


def _blur_along(x: Tensor, dim: int, sigma: float) -> Tensor:
    """Gaussian blur along one dimension, edges replicated."""
    radius = max(1, math.ceil(3.0 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(dtype=x.dtype, device=x.device)
    moved = x.movedim(dim, -1)
    flat = moved.reshape(-1, 1, moved.shape[-1])
    padded = F.pad(flat, (radius, radius), mode="replicate")
    blurred = F.conv1d(padded, kernel.view(1, 1, -1))
    return blurred.reshape(moved.shape).movedim(-1, dim)


@dataclass(frozen=True)
class Uniform:
    """Uniform noise in ``[low, high]``; by default each sample's own min and max. Seeded."""

    seed: int = 0
    low: float | None = None
    high: float | None = None

    def __call__(self, x: Tensor) -> Tensor:
        flat = x.detach().reshape(x.shape[0], -1)
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        low = flat.min(1).values.view(shape) if self.low is None else torch.tensor(self.low)
        high = flat.max(1).values.view(shape) if self.high is None else torch.tensor(self.high)
        gen = torch.Generator().manual_seed(self.seed)
        noise = torch.rand(x.shape, generator=gen, dtype=torch.float64)
        noise = noise.to(dtype=x.dtype, device=x.device)
        return low.to(x) + noise * (high.to(x) - low.to(x))


@dataclass(frozen=True)
class Sampled:
    """``k`` baselines per sample drawn (with replacement, seeded) from ``reference`` rows.

    Averaging IG over them estimates expected gradients: the attribution against the data
    distribution instead of a single reference point.
    """

    reference: Tensor
    k: int = 8
    seed: int = 0

    def draw(self, x: Tensor) -> list[Tensor]:
        """The ``k`` baseline tensors, each shaped like ``x``."""
        ref = check_input(self.reference, "Sampled reference")
        if ref.shape[1:] != x.shape[1:]:
            raise ValueError(f"Sampled reference rows have shape {tuple(ref.shape[1:])} but "
                             f"the inputs have {tuple(x.shape[1:])}")
        if self.k < 1:
            raise ValueError(f"Sampled needs k >= 1 baselines per sample, got {self.k}")
        gen = torch.Generator().manual_seed(self.seed)
        rows = torch.randint(ref.shape[0], (self.k, x.shape[0]), generator=gen)
        return [ref[r.to(ref.device)].to(x) for r in rows]


BaselineLike: TypeAlias = Union[  # noqa: UP007  (a runtime alias: keep it 3.10 friendly)
    float, int, str, Tensor, Callable[[Tensor], Tensor], Sampled, Sequence["BaselineLike"],
    None,
]
_NAMED: dict[str, Callable[[Tensor], Tensor]] = {
    "zero": torch.zeros_like, "blur": Blur(), "uniform": Uniform(),
}


def resolve(spec: BaselineLike, x: Tensor) -> list[Tensor]:
    """The baselines ``spec`` stands for, each a tensor shaped like ``x`` (same dtype/device)."""
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError("baselines is an empty list; give at least one baseline")
        return [b for item in spec for b in resolve(item, x)]
    if isinstance(spec, Sampled):
        return spec.draw(x)
    return [_single(spec, x)]


def _single(spec: object, x: Tensor) -> Tensor:
    if spec is None:
        spec = "zero"
    if isinstance(spec, str):
        if spec not in _NAMED:
            raise ValueError(f"unknown baseline {spec!r}; named baselines are "
                             f"{', '.join(_NAMED)}")
        spec = _NAMED[spec]
    if isinstance(spec, bool):
        raise TypeError("baselines must be a number, tensor, name or callable, got a bool")
    if isinstance(spec, (int, float)):
        return torch.full_like(x, float(spec))
    if callable(spec) and not isinstance(spec, Tensor):
        with torch.no_grad():
            out = spec(x.detach())
        if not isinstance(out, Tensor):
            raise TypeError(f"a baseline callable must return a tensor, got "
                            f"{type(out).__name__}")
        return _as_input_like(out, x, "the baseline callable's result")
    if isinstance(spec, Tensor):
        return _as_input_like(spec, x, "baselines")
    raise TypeError(f"baselines must be a number, tensor, name, callable, Sampled or a list of "
                    f"them; got {type(spec).__name__}")


def _as_input_like(b: Tensor, x: Tensor, name: str) -> Tensor:
    """Broadcast ``b`` to ``x``'s shape, dtype and device, with a clear error if impossible."""
    trailing = x.shape[x.dim() - b.dim():] if b.dim() <= x.dim() else None
    fits = trailing is not None and all(
        size in (1, want) for size, want in zip(b.shape, trailing, strict=True))
    if not fits:
        raise ValueError(f"{name} has shape {tuple(b.shape)}, which does not broadcast to the "
                         f"inputs' shape {tuple(x.shape)}; give one baseline per sample or a "
                         f"shape broadcastable to one sample")
    b = b.detach().to(dtype=x.dtype, device=x.device).expand(x.shape)
    if not bool(torch.isfinite(b).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return b
