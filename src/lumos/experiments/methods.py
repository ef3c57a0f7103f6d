"""The explanation methods of the study by name, built for a model and its input domain.

A method key is what users type: ``ig``, ``lrp:epsilon-gamma-box``, ``gradient``, ... Each key
builds a function ``(x, target) -> Explanation``. The input domain (the lowest and highest value a
pixel can take after normalisation) feeds the rules that need it: LRP's ZBox rule on the first
layer and IG's black-image baseline.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from lumos.explanation import Explanation

Kind = Literal["ig", "lrp", "baseline"]
ExplainFn = Callable[[Tensor, Tensor], Explanation]

# composite key -> (class name in lumos.lrp.composites, short title)
COMPOSITES: dict[str, tuple[str, str]] = {
    "epsilon-plus": ("EpsilonPlus", "LRP ε+"),
    "epsilon-gamma-box": ("EpsilonGammaBox", "LRP εγ-box"),
    "epsilon-alpha2-beta1": ("EpsilonAlpha2Beta1", "LRP εα2β1"),
    "epsilon-plus-flat": ("EpsilonPlusFlat", "LRP ε+♭"),
    "epsilon-alpha2-beta1-flat": ("EpsilonAlpha2Beta1Flat", "LRP εα2β1♭"),
}
BASELINES: dict[str, tuple[str, str]] = {
    "gradient": ("Gradient", "Gradient"),
    "input-x-gradient": ("InputXGradient", "Input×Gradient"),
    "smoothgrad": ("SmoothGrad", "SmoothGrad"),
}


class MethodUnavailable(RuntimeError):
    """The code a method needs is not importable (not installed, or not built yet)."""


@dataclass(frozen=True)
class Domain:
    """Per-channel bounds ``(1, C, 1, 1)`` of a normalised input: ``low`` is a black pixel."""

    low: Tensor
    high: Tensor

    @classmethod
    def from_normalization(cls, mean: list[float], std: list[float]) -> Domain:
        """Bounds of ``(x - mean) / std`` for ``x`` in ``[0, 1]``."""
        m = torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        return cls(low=(0.0 - m) / s, high=(1.0 - m) / s)

    @classmethod
    def unit(cls, channels: int = 1) -> Domain:
        """Inputs in ``[0, 1]`` (no normalisation)."""
        return cls(low=torch.zeros(1, channels, 1, 1), high=torch.ones(1, channels, 1, 1))


@dataclass(frozen=True)
class Method:
    """A named method: how to build its explain function for a model."""

    key: str
    title: str
    kind: Kind


def parse(key: str) -> Method:
    """The method for a user-typed key (``ig``, ``lrp:COMPOSITE``, ``gradient``, ...).

    Raises
    ------
    ValueError
        With the list of valid keys, when ``key`` is not one of them.
    """
    key = key.strip().lower()
    if key == "ig":
        return Method("ig", "IG", "ig")
    if key == "lrp":
        key = "lrp:epsilon-gamma-box"
    if key.startswith("lrp:") and key[4:] in COMPOSITES:
        return Method(key, COMPOSITES[key[4:]][1], "lrp")
    if key in BASELINES:
        return Method(key, BASELINES[key][1], "baseline")
    raise ValueError(f"unknown method {key!r}; choose one of {', '.join(keys())}")


def keys() -> list[str]:
    """Every valid method key."""
    return ["ig", *(f"lrp:{c}" for c in COMPOSITES), *BASELINES]


def _import(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise MethodUnavailable(f"{module}.{name} is not available ({err})") from err


def _accepted(fn: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """The options ``fn`` accepts by name (so a config can carry settings of other versions)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


def composite(key: str, low: Tensor, high: Tensor, options: dict[str, Any] | None = None
              ) -> Any:
    """The LRP composite of method ``key`` (``lrp:COMPOSITE``) for inputs bounded by
    ``low``/``high`` (the rules that need bounds take them; ``options`` go to the constructor
    where it accepts them)."""
    cls = _import("lumos.lrp.composites", COMPOSITES[key.split(":", 1)[1]][0])
    return cls(**_accepted(cls, {"low": low, "high": high, **(options or {})}))


def build(method: Method, model: nn.Module, domain: Domain,
          options: dict[str, Any] | None = None) -> ExplainFn:
    """The explain function of ``method`` for ``model``.

    ``options`` are passed on to the method where it accepts them: for IG ``tolerance``,
    ``max_steps``, ``n_steps`` (``explain`` settings); for SmoothGrad ``noise_level``,
    ``n_samples``, ``seed``; for LRP composites their constructor arguments.

    Raises
    ------
    MethodUnavailable
        When the implementation cannot be imported.
    """
    opts = dict(options or {})
    if method.kind == "ig":
        ig = _import("lumos.attribution.integrated", "IntegratedGradients")(model)
        kwargs = _accepted(ig.explain, {"baselines": domain.low, **opts})
        return lambda x, t: ig.explain(x, target=t, **kwargs)
    if method.kind == "lrp":
        lrp = _import("lumos.lrp.engine", "LRP")(
            model, composite=composite(method.key, domain.low, domain.high, opts))
        return lambda x, t: lrp.explain(x, target=t)
    cls = _import("lumos.attribution.gradient", BASELINES[method.key][0])
    attributor = cls(model, **_accepted(cls, opts))
    return lambda x, t: attributor.explain(x, target=t)
