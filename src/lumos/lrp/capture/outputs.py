"""What LRP explains of a model's output: its scores (logits).

A model may return a tensor, a Hugging Face ``ModelOutput`` (``ImageClassifierOutput`` and
friends), a dict or a tuple. :func:`logits_of` takes ``.logits`` (or the ``"logits"`` entry)
when there is one, else the first tensor, searching nested tuples, lists and dicts in order; the
capture applies it to the traced output and the reference applies it to the eager one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, fx

from lumos.lrp.errors import LRPUnsupportedError


def _is_tensor(value: Any) -> bool:
    return isinstance(value, (Tensor, fx.Proxy))


def logits_of(output: Any) -> Any:
    """The scores in a model's ``output`` (see the module docstring).

    Raises
    ------
    LRPUnsupportedError
        When the output holds no tensor at all.
    """
    if _is_tensor(output):
        return output
    logits = output.get("logits") if isinstance(output, Mapping) else None
    if logits is None and not isinstance(output, (Mapping, tuple, list)):
        logits = getattr(output, "logits", None)
    if _is_tensor(logits):
        return logits
    found = _first_tensor(output)
    if found is None:
        raise LRPUnsupportedError(
            f"the model returns {type(output).__name__} without a tensor in it; LRP explains a "
            "tensor of scores (return one, or a ModelOutput / dict with 'logits')")
    return found


def _first_tensor(value: Any) -> Any:
    if _is_tensor(value):
        return value
    if isinstance(value, Mapping):
        items: Any = value.values()
    elif isinstance(value, (tuple, list)):
        items = value
    else:
        return None
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


__all__ = ["logits_of"]
