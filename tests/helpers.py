"""Test helpers shared across the suite.

``small_cnn()`` and ``small_mlp()`` build small random float64 models.

``untouched(model)`` proves that lumos leaves a user's model exactly as it found it:
parameter and buffer values (bit for bit), ``requires_grad``, ``.grad``, every hook dict,
``training`` flags, ``inplace`` flags and the module tree. Use it as a context manager; it
checks on exit also when the body raised (and re-raises the body's error).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

_HOOK_DICTS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
    "_state_dict_hooks", "_load_state_dict_pre_hooks", "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called",
)


def _tensor_state(t: torch.Tensor | None) -> Any:
    if t is None:
        return None
    return (t.detach().clone(), t.dtype, t.device, t.requires_grad, t.data_ptr())


def snapshot(model: nn.Module) -> dict[str, Any]:
    """Everything about ``model`` that an attributor must not change."""
    state: dict[str, Any] = {}
    for name, module in model.named_modules():
        key = name or "<root>"
        state[f"{key}:type"] = type(module)
        state[f"{key}:training"] = module.training
        state[f"{key}:inplace"] = getattr(module, "inplace", None)
        state[f"{key}:attrs"] = sorted(vars(module))
        for hooks in _HOOK_DICTS:
            state[f"{key}:{hooks}"] = list(getattr(module, hooks, {}).items())
        for pname, p in module.named_parameters(recurse=False):
            state[f"{key}.{pname}"] = (*_tensor_state(p), _tensor_state(p.grad))
        for bname, b in module.named_buffers(recurse=False):
            state[f"{key}.{bname}"] = _tensor_state(b)
    # global module hooks must not leak either
    from torch.nn.modules import module as module_mod
    for hooks in ("_global_forward_hooks", "_global_forward_pre_hooks",
                  "_global_backward_hooks", "_global_backward_pre_hooks"):
        state[f"global:{hooks}"] = list(getattr(module_mod, hooks, {}).items())
    return state


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return (isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
                and torch.equal(a.isnan(), b.isnan())
                and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)))
    if isinstance(a, (tuple, list)):
        return (isinstance(b, (tuple, list)) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b, strict=True)))
    return bool(a == b)


def assert_same_state(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Fail with the first differing entry between two snapshots."""
    assert before.keys() == after.keys(), (
        f"model structure changed: added {sorted(after.keys() - before.keys())[:5]}, "
        f"removed {sorted(before.keys() - after.keys())[:5]}")
    for key in before:
        assert _same(before[key], after[key]), f"model changed at {key}"


@contextlib.contextmanager
def untouched(model: nn.Module) -> Iterator[None]:
    """Assert that ``model`` is identical after the block, also when the block raises."""
    before = snapshot(model)
    try:
        yield
    finally:
        assert_same_state(before, snapshot(model))


def small_cnn(in_channels: int = 1, n_classes: int = 10, size: int = 12) -> nn.Module:
    """A random conv net with pooling, bias and ReLU; float64."""
    flat = 8 * (size // 2) * (size // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(flat, 16), nn.ReLU(), nn.Linear(16, n_classes),
    ).double().eval()


def small_mlp(n_in: int = 20, n_classes: int = 5) -> nn.Module:
    """A random MLP with tanh and ReLU; float64."""
    return nn.Sequential(nn.Linear(n_in, 32), nn.Tanh(), nn.Linear(32, 16), nn.ReLU(),
                         nn.Linear(16, n_classes)).double().eval()
