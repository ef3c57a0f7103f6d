"""The private copy LRP works on: the user's modules copied, the user's parameters shared.

:func:`private_copy` deep-copies the module tree and every Python attribute (so preparation may
rewrite the copy's modules, flags and hooks freely) and the buffers (small: a forward in
training mode may update BatchNorm statistics), but not the parameters: the copy reads the
user's parameter tensors through new ``requires_grad=False`` parameter objects, and nothing in
lumos writes to them (the capture refuses a model that writes into its own parameters during
forward). A model's weights are thus held once, not twice; only tensors a rule changes (a
BatchNorm folded into a convolution) are new.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from torch import Tensor, nn

from lumos.lrp.errors import LRPUnsupportedError

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
               "_backward_pre_hooks", "_forward_hooks_with_kwargs",
               "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called")


def private_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` whose parameters and buffers are the user's tensors.

    Hooks of the user never run in the copy (they are dropped from it), and the user's model
    keeps its own hooks, flags and tensors exactly as they were.

    Raises
    ------
    LRPUnsupportedError
        When the model cannot be copied (``copy.deepcopy`` fails on some attribute).
    """
    memo: dict[int, Any] = {}
    for p in model.parameters():
        memo[id(p)] = nn.Parameter(p.detach(), requires_grad=False)
    for b in model.buffers():   # small (statistics, indices), and a forward may update them
        memo[id(b)] = b.detach().clone()
    for module in model.modules():
        _detach_cached(vars(module), memo)
    try:
        private = copy.deepcopy(model, memo)
    except Exception as err:
        raise LRPUnsupportedError(f"cannot copy the model for LRP ({type(err).__name__}: "
                                  f"{err}); make it deep-copyable (copy.deepcopy)") from err
    for module in private.modules():
        for name in _HOOK_DICTS:
            getattr(module, name, {}).clear()
    return private.eval()


def _detach_cached(value: Any, memo: dict[int, Any], depth: int = 0) -> None:
    """Copy tensors a forward cached in plain attributes (LeViT's attention-bias cache, filled
    by an eval-mode call with gradients on) as detached tensors: ``copy.deepcopy`` refuses
    tensors that are not graph leaves."""
    if isinstance(value, Tensor):
        if value.grad_fn is not None and id(value) not in memo:
            memo[id(value)] = value.detach().clone()
    elif isinstance(value, dict) and depth < 3:
        for key, item in value.items():
            if key not in ("_parameters", "_buffers", "_modules"):
                _detach_cached(item, memo, depth + 1)
    elif isinstance(value, (list, tuple)) and depth < 3:
        for item in value:
            _detach_cached(item, memo, depth + 1)


def structural_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` (a module of the private copy) that shares its tensors."""
    memo: dict[int, Any] = {id(t): t for t in itertools.chain(module.parameters(),
                                                               module.buffers())}
    return copy.deepcopy(module, memo)


def shared_tensors(model: nn.Module) -> list[Tensor]:
    """The user's parameters (whose storage the capture must never write)."""
    return list(model.parameters())


__all__ = ["private_copy", "shared_tensors", "structural_copy"]
