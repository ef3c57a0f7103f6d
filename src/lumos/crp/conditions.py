"""Concepts and conditions as users write them, checked and put in one canonical form.

A *concept* is a channel (or a set of channels) of a layer: a convolution's output channel, a
linear layer's unit, a feature of a transformer's token stream. A *condition* names one concept
in each of one or more layers; the conditional heatmap keeps only the relevance that flows
through all of them. Canonical form: ``{layer: (channel, ...)}``, channels sorted and unique.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

#: One concept: a channel index, or several channels taken together.
ConceptLike: TypeAlias = "int | Sequence[int]"
#: A condition as users write it: ``{"features.28": 3, "features.21": [7, 8]}``.
ConditionLike: TypeAlias = "Mapping[str, ConceptLike]"
#: The canonical condition.
Condition: TypeAlias = "dict[str, tuple[int, ...]]"


def channels(concept: object, where: str) -> tuple[int, ...]:
    """The channels of one concept (an int or a sequence of ints), sorted and unique."""
    if hasattr(concept, "tolist"):  # a tensor or numpy value / array
        concept = concept.tolist()
    if isinstance(concept, bool):
        raise TypeError(f"{where}: a concept is a channel index or a list of them, got a bool")
    if isinstance(concept, int) or (hasattr(concept, "__index__")
                                    and not hasattr(concept, "__len__")):
        values = [int(concept)]
    elif isinstance(concept, Iterable) and not isinstance(concept, (str, bytes)):
        values = []
        for c in concept:
            if isinstance(c, bool) or not hasattr(c, "__index__"):
                raise TypeError(f"{where}: channel indices must be integers, got {c!r}")
            values.append(int(c))
    else:
        raise TypeError(f"{where}: a concept is a channel index or a list of them, "
                        f"got {type(concept).__name__}")
    if not values:
        raise ValueError(f"{where}: a concept needs at least one channel")
    if min(values) < 0:
        raise ValueError(f"{where}: channel indices must be >= 0, got {min(values)}")
    return tuple(sorted(set(values)))


def from_arguments(layer: str | None, concepts: Iterable[ConceptLike] | None,
                   conditions: Sequence[ConditionLike] | None) -> list[Condition] | str:
    """Canonical conditions from ``layer`` + ``concepts`` or ``conditions`` (exactly one way).

    Returns the layer name alone when ``layer`` is given without ``concepts``: every channel
    of that layer, which only the model can count.
    """
    if conditions is not None:
        if layer is not None or concepts is not None:
            raise ValueError("give either layer= and concepts=, or conditions=, not both")
        if isinstance(conditions, Mapping):
            raise TypeError("conditions must be a list of dicts ({layer: concept}); wrap a "
                            "single condition in a list")
        out = [canonical(c, f"conditions[{i}]") for i, c in enumerate(conditions)]
        if not out:
            raise ValueError("conditions is empty; give at least one {layer: concept}")
        return out
    if layer is None:
        raise ValueError("name the concepts: layer= (with concepts=, default every channel), "
                         "or conditions=[{layer: concept, ...}, ...]")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a module path (str), got {type(layer).__name__}")
    if concepts is None:
        return layer
    if isinstance(concepts, (str, bytes)) or not isinstance(concepts, Iterable):
        raise TypeError("concepts must be a list of channel indices (or of lists of them)")
    out = [{layer: channels(c, f"concepts[{i}]")} for i, c in enumerate(concepts)]
    if not out:
        raise ValueError("concepts is empty; give at least one channel")
    return out


def canonical(condition: object, where: str) -> Condition:
    """One condition in canonical form."""
    if not isinstance(condition, Mapping) or not condition:
        raise TypeError(f"{where} must be a non-empty dict {{layer: concept}}")
    out: Condition = {}
    for layer, concept in condition.items():
        if not isinstance(layer, str):
            raise TypeError(f"{where}: layer names are module paths (str), got {layer!r}")
        out[layer] = channels(concept, f"{where}[{layer!r}]")
    return out


def every_channel(layer: str, count: int) -> list[Condition]:
    """One condition per channel of ``layer``."""
    return [{layer: (c,)} for c in range(count)]


def check_range(conditions: Sequence[Condition], counts: Mapping[str, int]) -> None:
    """Raise ``IndexError`` for a channel that ``counts`` (channels per layer) does not have."""
    for i, condition in enumerate(conditions):
        for layer, chans in condition.items():
            if chans[-1] >= counts[layer]:
                raise IndexError(f"conditions[{i}]: layer '{layer}' has {counts[layer]} "
                                 f"channels (0..{counts[layer] - 1}), got channel {chans[-1]}")
