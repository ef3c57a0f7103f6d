"""Glue for running Quantus 0.6 side by side with lumos in bench scripts (never imported by lumos).

- :func:`replaying`: swap a Quantus module's ``np`` for a proxy whose ``np.random.<fn>`` hands
  out given arrays in order, so Quantus consumes exactly the perturbations lumos drew.
- :func:`explain_for_quantus`: a ``(model, x, t) -> attribution`` torch function as Quantus's
  ``explain_func(model, inputs, targets, **kwargs) -> ndarray``.
- :func:`per_sample_max`: Quantus's ``normalise_func`` with the maximum taken per sample (its
  default divides the whole batch by one maximum; lumos normalises per sample).
- :func:`zennit_epsilon_plus`: the ``explain_func_kwargs`` with which ``quantus.explain`` runs
  LRP epsilon-plus itself (through Zennit), as a Quantus user would; :func:`own_explain_check`
  compares its maps with lumos's in float64.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


class _RandomProxy:
    def __init__(self, replay: dict[str, Iterator[Any]]) -> None:
        self._replay = replay

    def __getattr__(self, name: str) -> Any:
        if name in self._replay:
            source = self._replay[name]
            return lambda *args, **kwargs: next(source)
        return getattr(np.random, name)


class _NumpyProxy:
    def __init__(self, replay: dict[str, Iterator[Any]], extra: dict[str, Any]) -> None:
        self.random = _RandomProxy(replay)
        self._extra = extra

    def __getattr__(self, name: str) -> Any:
        if name in self._extra:
            return self._extra[name]
        return getattr(np, name)


@contextlib.contextmanager
def replaying(module: str, extra: dict[str, Any] | None = None,
              **replay: Iterable[Any]) -> Iterator[None]:
    """Within the block, ``module``'s ``np.random.<name>()`` returns the next item of
    ``replay[name]`` (and ``np.<key>`` is ``extra[key]``)."""
    mod: ModuleType = importlib.import_module(module)
    saved = mod.np  # type: ignore[attr-defined]
    mod.np = _NumpyProxy({k: iter(v) for k, v in replay.items()}, extra or {})  # type: ignore
    try:
        yield
    finally:
        mod.np = saved  # type: ignore[attr-defined]


@contextlib.contextmanager
def patched(module: str, name: str, value: Any) -> Iterator[None]:
    """Within the block, ``module.name`` is ``value``."""
    mod = importlib.import_module(module)
    saved = getattr(mod, name)
    setattr(mod, name, value)
    try:
        yield
    finally:
        setattr(mod, name, saved)


ModelExplain = Callable[[nn.Module, Tensor, Tensor], Tensor]


def explain_for_quantus(fn: ModelExplain) -> Callable[..., np.ndarray]:
    """Quantus's ``explain_func`` signature around a torch ``(model, x, targets)`` function."""
    def explain(model: nn.Module, inputs: Any, targets: Any, **kwargs: Any) -> np.ndarray:
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        t = torch.as_tensor(np.asarray(targets)).long().reshape(-1)
        return fn(model, x, t).detach().cpu().numpy().astype(np.float32)

    return explain


def per_sample_max(a: np.ndarray) -> np.ndarray:
    """Divide each sample by its own largest ``|value|`` (2-D input: by the global maximum,
    as Quantus does for sufficiency's distance matrix)."""
    if a.ndim == 2:
        peak = np.max(np.abs(a))
        return a / peak if peak > 0 else a
    peak = np.max(np.abs(a), axis=tuple(range(1, a.ndim)), keepdims=True)
    return np.where(peak > 0, a / np.where(peak > 0, peak, 1), a)


def zennit_epsilon_plus() -> dict[str, Any]:
    """``quantus.explain`` keyword arguments for LRP epsilon-plus through Zennit 0.5.1: its
    ``EpsilonPlus`` composite, BatchNorm merged into the convolution before it (Zennit's
    ``SequentialMergeBatchNorm``, as lumos folds it), the ``Gradient`` attributor."""
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlus
    from zennit.torchvision import SequentialMergeBatchNorm

    return {"xai_lib": "zennit", "attributor": Gradient, "composite": EpsilonPlus,
            "canonizer": SequentialMergeBatchNorm}


def own_explain_check(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Largest difference, relative to each sample's largest ``|relevance|``, between
    ``quantus.explain`` with :func:`zennit_epsilon_plus` and lumos's LRP epsilon-plus, in
    float64; the first with the model as it is, the second with its BatchNorms' ``eps`` set to
    0 (Zennit 0.5.1's merge leaves ``eps`` in the merged BatchNorm: ``x / sqrt(1 + eps)``).

    Quantus starts Zennit from 1 at the target class, lumos from ``f_t(x)``: LRP is linear in
    its start, so Zennit's map times ``f_t(x)`` is compared.
    """
    import copy

    import quantus

    import lumos
    from lumos.lrp import composites

    def worst(net: nn.Module) -> float:
        xd = x.double()
        ours = lumos.LRP(net, composite=composites.EpsilonPlus()).explain(xd, target=y)
        saved = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)  # quantus.explain builds torch.Tensor(inputs)
        try:
            theirs = torch.as_tensor(quantus.explain(net, xd.numpy(), y.numpy(),
                                                     **zennit_epsilon_plus()))
        finally:
            torch.set_default_dtype(saved)
        want = ours.attribution.reshape(len(x), -1)
        got = theirs.reshape(len(x), -1) * ours.output[:, None]
        scale = want.abs().amax(1).clamp_min(1e-300)
        return float(((got - want).abs().amax(1) / scale).max())

    net = copy.deepcopy(model).double().eval()
    as_is = worst(net)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eps = 0.0
    return as_is, worst(net)
