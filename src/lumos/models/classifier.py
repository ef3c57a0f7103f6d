"""A classifier with what is needed to feed and read it: the result of resolving a model spec.

:class:`Classifier` bundles a model (eval mode, returning one tensor of scores) with its class
names, the input normalisation and the input size; :class:`Logits` turns a model whose output
is a Hugging Face ``ModelOutput``, a dict or a tuple into one that returns its logits, so every
attribution method reads the same scores LRP explains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

if TYPE_CHECKING:
    from lumos.experiments.methods import Domain

#: Default input side of ImageNet-style classifiers.
SIZE = 224


@dataclass
class Classifier:
    """An ImageNet-style classifier with what is needed to feed and read it."""

    model: nn.Module
    classes: list[str]
    mean: list[float]
    std: list[float]
    name: str
    size: int = SIZE

    @property
    def domain(self) -> Domain:
        """Bounds of the normalised input (black and white pixels)."""
        from lumos.experiments.methods import Domain

        return Domain.from_normalization(self.mean, self.std)


class Logits(nn.Module):
    """``model``'s scores as one tensor: its ``logits`` (``ModelOutput``, dict), else the first
    tensor of what it returns (:func:`lumos.lrp.capture.outputs.logits_of`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Any:
        from lumos.lrp.capture.outputs import logits_of

        return logits_of(self.model(x))


__all__ = ["SIZE", "Classifier", "Logits"]
