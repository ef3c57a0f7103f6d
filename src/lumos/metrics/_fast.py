"""A faster copy of the user's model for the metrics' many forward passes.

The perturbation metrics score thousands of perturbed inputs under ``torch.inference_mode``.
On the CPU a float32 convolutional network runs about twice as fast with its weights in the
channels-last layout (oneDNN convolutions and pooling) and its BatchNorms folded into the
convolutions before them (in eval mode). :func:`scoring_model` returns such a copy: a deep copy
of the model (the user's model is never touched), BatchNorm folded where the model traces with
``torch.fx`` (else left as is), ReLUs in place where they read a fresh layer output that
nothing else reads, channels-last weights, 2-D max pooling as the maximum of strided slices
(:mod:`lumos._pooling`); it is checked against the model on the
inputs at hand before it is used, and kept for the next call while the model's parameters,
buffers and modules stay the same (any in-place change, an optimiser step say, makes a new one).

The copy computes the same function; its outputs differ from the model's by float rounding
(about 1e-7 relative). Anything else gets the model itself: other devices and dtypes, training
mode, models without 2-D convolutions, models with hooks (they would not fire on a folded copy),
and models whose copy cannot be made or does not agree.

Metrics that rank or threshold near-equal scores need the model's own rounding:
:func:`exact_model` returns a copy that computes bit for bit what the model computes, faster
where a layer has an exact faster form. Today that is 2-D max pooling
(:class:`lumos._pooling.SlicedMaxPool2d`: a maximum has no rounding, NaN included). The copy
is checked bit for bit against the model on the first inputs and kept like the scoring copy.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

import torch
from torch import Tensor, nn

from lumos._pooling import SlicedMaxPool2d, swap_pools

#: Agreement the copy must show with the model on the first inputs (relative to the output).
RTOL = 1e-4
_PROBE = 4

_Cache = weakref.WeakKeyDictionary[nn.Module, tuple[tuple[Any, ...], nn.Module | None]]
_cache: _Cache = weakref.WeakKeyDictionary()
_exact_cache: _Cache = weakref.WeakKeyDictionary()


def _key(model: nn.Module, x: Tensor) -> tuple[Any, ...]:
    from lumos.lrp.engine.programs import fingerprint  # what LRP keys its programs on

    return *fingerprint(model), x.dtype, tuple(x.shape[1:])


def _eligible(model: nn.Module, x: Tensor, needs: type[nn.Module] = nn.Conv2d) -> bool:
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return False
    modules = list(model.modules())
    if any(m.training for m in modules):  # dropout or batch statistics anywhere: as it is
        return False
    if not any(isinstance(m, needs) for m in modules):
        return False
    hooked = any(getattr(m, name, None) for m in modules for name in (
        "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))
    return not hooked and all(p.device.type == "cpu" and p.dtype == torch.float32
                              for p in model.parameters())


#: Modules whose output is always a new tensor (never a view of their input).
_FRESH = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d,
          nn.BatchNorm3d)


def _relu_in_place(graph_module: nn.Module) -> None:
    """Let a ReLU overwrite its input where that input is the fresh output of a convolution,
    linear or BatchNorm layer that nothing else reads (never the caller's tensor or a view)."""
    graph = getattr(graph_module, "graph", None)
    if graph is None:
        return
    modules = dict(graph_module.named_modules())
    safe: dict[str, bool] = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.ReLU):
            continue
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        fresh = (isinstance(source, torch.fx.Node) and source.op == "call_module"
                 and isinstance(modules.get(str(source.target)), _FRESH)
                 and len(source.users) == 1)
        safe[node.target] = safe.get(node.target, True) and fresh
    for name, ok in safe.items():
        if ok:
            modules[name].inplace = True


def _build(model: nn.Module, x: Tensor) -> nn.Module | None:
    try:
        fast = copy.deepcopy(model)
    except Exception:
        return None
    try:
        from torch.fx.experimental.optimization import fuse

        fast = fuse(fast, inplace=True)
        _relu_in_place(fast)
    except Exception:
        pass
    fast.to(memory_format=torch.channels_last)
    swap_pools(fast, SlicedMaxPool2d)   # faster again on channels-last activations
    for p in fast.parameters():
        p.requires_grad_(False)
    outputs = _on_probe(model, fast, x)
    if outputs is None or outputs[1].dtype != outputs[0].dtype:
        return None
    expected, got = outputs
    scale = float(expected.abs().amax()) if expected.numel() else 0.0
    if not torch.allclose(got, expected, rtol=RTOL, atol=RTOL * max(scale, 1e-6)):
        return None
    return fast


def scoring_model(model: nn.Module, x: Tensor) -> nn.Module:
    """The model to run ``x`` through under ``torch.inference_mode``: a faster equivalent copy
    of ``model`` where one applies (see the module notes), else ``model`` itself."""
    if not _eligible(model, x):
        return model
    key = _key(model, x)
    hit = _cache.get(model)
    if hit is None or hit[0] != key:
        hit = (key, _build(model, x))
        _cache[model] = hit
    return hit[1] if hit[1] is not None else model


def _build_exact(model: nn.Module, x: Tensor) -> nn.Module | None:
    try:
        exact = copy.deepcopy(model)
    except Exception:
        return None
    if not swap_pools(exact, SlicedMaxPool2d):
        return None
    for p in exact.parameters():
        p.requires_grad_(False)
    outputs = _on_probe(model, exact, x)
    if outputs is None or not torch.equal(outputs[1], outputs[0]):
        return None
    return exact


def exact_model(model: nn.Module, x: Tensor) -> nn.Module:
    """The model to run ``x`` through under ``torch.inference_mode`` where the model's own
    rounding matters: a copy that computes the same bits faster where one applies (see the
    module notes), else ``model`` itself. Module names are those of the model."""
    if not _eligible(model, x, nn.MaxPool2d):
        return model
    key = _key(model, x)
    hit = _exact_cache.get(model)
    if hit is None or hit[0] != key:
        hit = (key, _build_exact(model, x))
        _exact_cache[model] = hit
    return hit[1] if hit[1] is not None else model


def _on_probe(model: nn.Module, candidate: nn.Module, x: Tensor) -> tuple[Tensor, Tensor] | None:
    """The model's and ``candidate``'s outputs on the first inputs of ``x``; None when either fails
    or they are not tensors of one shape."""
    probe = x[:_PROBE]
    with torch.inference_mode():
        try:
            expected, got = model(probe), candidate(probe)
        except Exception:
            return None
    if not (isinstance(expected, Tensor) and isinstance(got, Tensor)
            and got.shape == expected.shape):
        return None
    return expected, got
