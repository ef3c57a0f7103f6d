"""The simple gradient family: Gradient (saliency), Input x Gradient and SmoothGrad.

They share Integrated Gradients' interface (``attribute`` returns a tensor shaped like the
input, ``explain`` an :class:`~lumos.explanation.Explanation`) so metrics can compare them.
All of them leave the model exactly as they found it: gradients are taken with
``torch.autograd.grad`` with respect to a detached copy of the input, so no parameter
``.grad``, hook, mode or flag of the model is touched.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import Target, TargetLike
from lumos.explanation import Explanation

Model = nn.Module | Callable[[Tensor], Tensor]


def check_model(model: object) -> Model:
    """Return ``model`` if lumos can call it without changing it; raise otherwise.

    A BatchNorm layer in training mode would update its running statistics on every call (and
    mix the rows of a batch), so such models are refused with the layer's path.
    """
    if not callable(model):
        raise TypeError(f"model must be an nn.Module or a callable, got {type(model).__name__}")
    if isinstance(model, nn.Module):
        for name, module in model.named_modules():
            if (isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training
                    and module.track_running_stats):
                raise ValueError(f"BatchNorm layer {name or '<root>'!r} is in training mode and "
                                 f"would update its running statistics; call model.eval() "
                                 f"before explaining")
    return model


def forward(model: Model, x: Tensor) -> Tensor:
    """``model(x)``, checked to be a tensor with one row per input row."""
    out = model(x)
    if not isinstance(out, Tensor):
        raise TypeError(f"the model must return a tensor, got {type(out).__name__}")
    if out.dim() == 0 or out.shape[0] != x.shape[0]:
        raise ValueError(f"the model returned shape {tuple(out.shape)} for {x.shape[0]} inputs; "
                         f"it must return one row per input")
    return out


def score_and_grad(model: Model, points: Tensor, target: Target) -> tuple[Tensor, Tensor]:
    """Target score per row and its gradient with respect to ``points``.

    Rows must not interact inside the model (eval-mode BatchNorm is fine), because the
    gradient of the summed score is taken once for the whole batch.
    """
    with torch.enable_grad():
        leaf = points.detach().requires_grad_(True)
        score = target.score(forward(model, leaf))
        if not score.requires_grad:  # the score does not depend on the input at all
            return score.detach(), torch.zeros_like(leaf)
        (grad,) = torch.autograd.grad(score.sum(), leaf, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(leaf)
    return score.detach(), grad


def _target_tensor(target: Target) -> Tensor | None:
    return None if target.classes is None else target.classes.clone()


class Gradient:
    """Gradient of the target score with respect to the input (saliency).

    Parameters
    ----------
    model:
        Any module or callable mapping a batch to scores; it is never modified.
    absolute:
        Return ``|grad|`` (Simonyan et al.'s saliency map, Captum's ``Saliency`` default).
    """

    method = "gradient"

    def __init__(self, model: Model, absolute: bool = False) -> None:
        self.model = check_model(model)
        self.absolute = absolute

    def attribute(self, inputs: Tensor, target: TargetLike = None) -> Tensor:
        """Attribution shaped like ``inputs`` for the score ``target`` selects."""
        return self.explain(inputs, target).attribution

    def explain(self, inputs: Tensor, target: TargetLike = None) -> Explanation:
        """The attribution with the explained score per sample."""
        x = check_input(inputs)
        check_model(self.model)  # again: the model may have been put in training mode since
        tgt = Target(target, x.shape[0])
        attr, score = self._attribute(x, tgt)
        return Explanation(attribution=attr, output=score, method=self.method,
                           target=_target_tensor(tgt))

    def _attribute(self, x: Tensor, target: Target) -> tuple[Tensor, Tensor]:
        score, grad = score_and_grad(self.model, x, target)
        return (grad.abs() if self.absolute else grad), score


class InputXGradient(Gradient):
    """Input times gradient: a first-order Taylor estimate of each feature's contribution."""

    method = "input_x_gradient"

    def __init__(self, model: Model) -> None:
        super().__init__(model)

    def _attribute(self, x: Tensor, target: Target) -> tuple[Tensor, Tensor]:
        score, grad = score_and_grad(self.model, x, target)
        return x.detach() * grad, score


class SmoothGrad(Gradient):
    """Gradients averaged over noisy copies of the input (Smilkov et al. 2017).

    Parameters
    ----------
    model:
        The model to explain.
    noise_level:
        Noise standard deviation as a fraction of each sample's value range
        ``max(x) - min(x)`` (the paper's ``sigma / (x_max - x_min)``; 0.1 to 0.2 works well).
    n_samples:
        Number of noisy copies averaged.
    seed:
        Seed of the noise, so repeated calls give the same attribution.
    multiply_by_inputs:
        Multiply the averaged gradient by the input (SmoothGrad of Input x Gradient).
    """

    method = "smoothgrad"

    def __init__(self, model: Model, noise_level: float = 0.15, n_samples: int = 25,
                 seed: int = 0, multiply_by_inputs: bool = False) -> None:
        super().__init__(model)
        if noise_level < 0:
            raise ValueError(f"noise_level must be >= 0, got {noise_level}")
        if n_samples < 1:
            raise ValueError(f"n_samples must be at least 1, got {n_samples}")
        self.noise_level = noise_level
        self.n_samples = n_samples
        self.seed = seed
        self.multiply_by_inputs = multiply_by_inputs

    def _attribute(self, x: Tensor, target: Target) -> tuple[Tensor, Tensor]:
        flat = x.detach().reshape(x.shape[0], -1)
        spread = (flat.max(1).values - flat.min(1).values).view(-1, *([1] * (x.dim() - 1)))
        sigma = self.noise_level * spread
        gen = torch.Generator().manual_seed(self.seed)
        total = torch.zeros_like(x)
        for _ in range(self.n_samples):
            noise = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x)
            total += score_and_grad(self.model, x.detach() + sigma * noise, target)[1]
        with torch.no_grad():
            score = target.score(forward(self.model, x.detach()))
        attr = total / self.n_samples
        return (attr * x.detach() if self.multiply_by_inputs else attr), score
