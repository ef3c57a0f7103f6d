"""lumos: explain image classifiers with Integrated Gradients and LRP, and measure the explanations.

The public names below are imported on first use, so ``import lumos`` stays fast and a
missing optional dependency only matters for the feature that needs it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("lumos")
except PackageNotFoundError:  # pragma: no cover - running from a source tree never installed
    __version__ = "0+unknown"
"""The installed version of lumos (from the package metadata; ``pyproject.toml`` sets it)."""

_LAZY: dict[str, str] = {
    "Explanation": "lumos.explanation",
    "IntegratedGradients": "lumos.attribution.integrated",
    "Gradient": "lumos.attribution.gradient",
    "InputXGradient": "lumos.attribution.gradient",
    "SmoothGrad": "lumos.attribution.gradient",
    "LRP": "lumos.lrp.engine",
    "CRP": "lumos.crp.attribution",
    "explain_dataset": "lumos.store.pipeline",
    "open_store": "lumos.store.reader",
}

_SUBMODULES = ("analysis", "attribution", "data", "experiments", "lrp", "metrics", "models",
               "store", "viz")

__all__ = sorted([*_LAZY, *_SUBMODULES, "__version__"])

if TYPE_CHECKING:  # pragma: no cover  (re-exported names for type checkers)
    from lumos.attribution.gradient import Gradient, InputXGradient, SmoothGrad  # noqa: F401
    from lumos.attribution.integrated import IntegratedGradients  # noqa: F401
    from lumos.crp.attribution import CRP  # noqa: F401
    from lumos.explanation import Explanation  # noqa: F401
    from lumos.lrp.engine import LRP  # noqa: F401
    from lumos.store.pipeline import explain_dataset  # noqa: F401
    from lumos.store.reader import open_store  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"lumos.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'lumos' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
