"""The conservation check of every model lumos claims: "explained" means conservative.

In float64, with every parameter named ``*bias`` and every BatchNorm running mean set to zero,
``CPLRP(epsilon=1e-9)`` puts on the input plus the reported sinks the relevance the output
starts with, to 1e-5 relative (:func:`assert_conserves`). A graph that runs but loses a branch
fails it.

Random inits are degenerate in two ways this repairs first (:func:`calibrate`): parameters that
are all zero (torchvision's zero-initialised ViT head, zero-initialised layer scales) are drawn
afresh, and BatchNorm layers get affine weights in [0.5, 1.5] and statistics from random inputs
(Hugging Face's EfficientNet draws BatchNorm weights like convolution weights, N(0, 0.02), so at
its init activations shrink to 1e-67 in float64 and underflow to zero in float32).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

import lumos
from lumos.lrp import composites

TOLERANCE = 1e-5


def calibrate(model: nn.Module, side: int, channels: int = 3, seed: int = 0,
              dtype: torch.dtype = torch.float64, zero_biases: bool = True) -> nn.Module:
    """``model`` in ``dtype`` and eval mode, repaired as the module docstring says; biases and
    running means zero unless ``zero_biases`` is False."""
    gen = torch.Generator().manual_seed(seed)
    model = model.to(dtype)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() and not p.any():
                p.normal_(0.0, 0.02, generator=gen)
        for m in norms:
            m.momentum = None   # the plain average over the calibration batches
            m.reset_running_stats()
            if m.affine:
                m.weight.uniform_(0.5, 1.5, generator=gen)
        if norms:
            # every submodule as in training (BatchNorm, and stochastic depth: with BatchNorm
            # alone in train mode, the calibrated float64 EfficientNet-V2-L amplifies rounding
            # to O(1) of its output and cannot be checked), the model's own forward as in
            # inference (Inception's auxiliary head stays off)
            model.train()
            model.training = False
            for _ in range(2):
                model(torch.randn(4, channels, side, side, generator=gen, dtype=dtype))
        model.eval()
        if not zero_biases:
            return model
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
        for m in norms:
            if m.running_mean is not None:
                m.running_mean.zero_()
    return model


def conservation_gap(model: nn.Module, x: Tensor,
                     target: int | Tensor | None = None) -> tuple[float, dict[str, Tensor]]:
    """``max |input + sinks - output| / |output|`` over the samples, and the report.

    ``target`` None: each sample's largest score in magnitude (a ReLU head, as SqueezeNet's,
    gives exact zeros once biases are zero, and a zero score has nothing to conserve)."""
    if target is None:
        from lumos.lrp.capture.outputs import logits_of

        with torch.no_grad():
            target = logits_of(model(x)).abs().argmax(dim=1)
    exp = lumos.LRP(model, composites.CPLRP(epsilon=1e-9)).explain(x, target=target)
    layers = exp.layers
    sinks = sum((v for k, v in layers.items() if k.endswith("(sink)")),
                torch.zeros_like(layers["output"]))
    gap = (layers["input"] + sinks - layers["output"]).abs() / layers["output"].abs()
    return float(gap.max()), layers


def assert_conserves(model: nn.Module, x: Tensor, name: str,
                     target: int | Tensor | None = None) -> None:
    """Fail when CPLRP on ``model`` (calibrated, float64) loses or makes relevance on ``x``."""
    gap, layers = conservation_gap(model, x, target)
    assert bool(layers["output"].abs().min() > 0), f"{name}: the explained score is zero"
    assert gap <= TOLERANCE, (f"{name}: input + sinks differ from the output by {gap:.2e} "
                              f"(input {layers['input'].tolist()}, output "
                              f"{layers['output'].tolist()})")


def assert_explains(model: nn.Module, x: Tensor, name: str, target: int = 1) -> None:
    """Fail unless EpsilonPlus gives a finite heatmap that is not all zero (float32)."""
    relevance = lumos.LRP(model, composites.EpsilonPlus()).attribute(x, target=target)
    assert relevance.shape == x.shape, name
    assert bool(torch.isfinite(relevance).all()), f"{name}: relevance not finite"
    assert bool(relevance.abs().sum() > 0), f"{name}: relevance all zero"
