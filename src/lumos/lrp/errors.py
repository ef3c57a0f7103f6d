"""The one error type of LRP preparation and rules."""

from __future__ import annotations


class LRPUnsupportedError(ValueError):
    """A model holds an operation or module that LRP cannot capture or has no rule for.

    The message names the operation or the module path (and, where known, the model's source
    file and line) and says what the user can do.
    """


__all__ = ["LRPUnsupportedError"]
