"""Turn a user's ``target`` into a per-sample score of the model output.

Every attributor and metric in lumos explains one scalar per sample. ``target`` says which:

- ``int``: the same class for every sample (the output must be ``(N, C)``);
- a sequence of ints or a 1-D integer tensor: one class per sample;
- a callable ``output -> (N,)`` score, for anything else (a margin, a sum of classes, ...);
- ``None``: the output itself when it is already one score per sample (``(N,)`` or ``(N, 1)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeAlias

import torch
from torch import Tensor

TargetLike: TypeAlias = "int | Sequence[int] | Tensor | Callable[[Tensor], Tensor] | None"


class Target:
    """A resolved target: picks one score per sample out of a model output.

    Parameters
    ----------
    target:
        See the module docstring.
    n:
        Number of samples the target must cover.
    """

    def __init__(self, target: TargetLike, n: int) -> None:
        self.n = n
        self.fn: Callable[[Tensor], Tensor] | None = None
        self.index: Tensor | None = None
        if callable(target) and not isinstance(target, Tensor):
            self.fn = target
        elif target is None:
            pass
        elif isinstance(target, bool):
            raise TypeError("target must be an int, a sequence of ints, a tensor or a callable, "
                            "got a bool")
        elif isinstance(target, int):
            self.index = torch.full((n,), target, dtype=torch.long)
        else:
            index = torch.as_tensor(target)
            if index.dtype.is_floating_point or index.dtype == torch.bool or index.is_complex():
                raise TypeError(f"target must hold integers, got dtype {index.dtype}")
            index = index.long().reshape(-1)
            if index.numel() == 1 and n != 1:
                index = index.expand(n)
            if index.numel() != n:
                raise ValueError(f"target has {index.numel()} entries but the input has "
                                 f"{n} samples; give one target per sample or a single int")
            self.index = index.cpu()

    @property
    def classes(self) -> Tensor | None:
        """The class index per sample, or ``None`` for callable and ``None`` targets."""
        return self.index

    def check(self, output: Tensor) -> None:
        """Raise a clear error when this target cannot select from ``output``."""
        if self.index is None:
            return
        if output.dim() != 2:
            raise ValueError(f"an integer target needs a model output of shape (N, classes); "
                             f"the model returned shape {tuple(output.shape)}. Pass a callable "
                             f"target that maps the output to one score per sample.")
        n_classes = output.shape[1]
        bad = (self.index < 0) | (self.index >= n_classes)
        if bool(bad.any()):
            value = int(self.index[bad][0])
            raise IndexError(f"target {value} is out of range for a model with {n_classes} "
                             f"outputs (valid: 0..{n_classes - 1})")

    def score(self, output: Tensor, repeat: int = 1) -> Tensor:
        """Per-sample score of ``output``.

        ``output`` holds ``repeat`` copies of the batch one after another (path methods stack
        several points per sample), so the class index is tiled accordingly.
        """
        if self.fn is not None:
            score = self.fn(output)
            if not isinstance(score, Tensor) or score.shape != (output.shape[0],):
                shape = tuple(score.shape) if isinstance(score, Tensor) else type(score).__name__
                raise ValueError(f"a callable target must return one score per sample, shape "
                                 f"({output.shape[0]},); it returned {shape}")
            return score
        if self.index is None:
            if output.dim() == 1:
                return output
            if output.dim() == 2 and output.shape[1] == 1:
                return output[:, 0]
            raise ValueError(f"target is required: the model returns shape "
                             f"{tuple(output.shape)}, not one score per sample")
        self.check(output)
        index = self.index.to(output.device)
        if repeat > 1:
            index = index.repeat(repeat)
        if index.numel() != output.shape[0]:
            raise ValueError(f"model returned {output.shape[0]} rows for {index.numel()} targets")
        return output.gather(1, index[:, None])[:, 0]

    def subset(self, rows: Tensor) -> Target:
        """The target restricted to the samples ``rows`` (a bool mask or index tensor)."""
        out = Target.__new__(Target)
        out.fn = self.fn
        out.index = None if self.index is None else self.index[rows.cpu()]
        out.n = int(out.index.numel()) if out.index is not None else int(
            rows.sum() if rows.dtype == torch.bool else rows.numel())
        return out


def one_hot_like(output: Tensor, target: Target) -> Tensor:
    """A tensor shaped like ``output`` holding the target score's gradient seed (one-hot)."""
    if target.index is None:
        raise ValueError("one_hot_like needs an integer target")
    seed = torch.zeros_like(output)
    seed.scatter_(1, target.index.to(output.device)[:, None], 1.0)
    return seed
