"""Coverage: LRP explains every torchvision classification model, conservatively.

Every model of ``torchvision.models.list_models(module=torchvision.models)`` except vit_h_14
(632M parameters at 518x518 input): random weights with random BatchNorm statistics (so
activations neither vanish nor explode), one small image each (torchvision's ViTs built for
32x32), float32, ``EpsilonPlus``: the relevance must be finite and not all zero, and ``LRP``
checks on the way that the prepared copy reproduces the model's output. Then the conservation
check of :mod:`lrp.conservation` (float64, biases and running means zero, CPLRP: input plus
sinks equal the output to 1e-5 relative), except for regnet_y_128gf (644M parameters: 5 GiB in
float64). torchvision's Swin v1/v2 run at 64x64, where their windows are padded and shifted.
torchvision initialises a ViT head with zeros, so zero weight matrices are drawn afresh (a zero
logit has no relevance to give). The timm models are in :mod:`lrp.test_timm_models`.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lumos
from helpers import untouched
from lrp.conservation import assert_conserves, calibrate
from lrp.fixtures_models import randomize_batchnorm
from lumos.lrp import composites

TRANSFORMERS = ("vit_", "swin_", "maxvit_", "convnext_")
EXCLUDED = {"vit_h_14"}
#: Input sizes where a model needs more than 32x32 (fixed-size patch grids, deep striding;
#: SqueezeNet 1.0's ReLU logits are all zero for a 32x32 image: no relevance to give).
SIZES = {"alexnet": 64, "inception_v3": 80, "squeezenet1_0": 64, "maxvit_t": 224,
         "swin_t": 64, "swin_s": 64, "swin_b": 64, "swin_v2_t": 64, "swin_v2_s": 64,
         "swin_v2_b": 64}
#: Models so large that snapshotting their parameters for the untouched check costs GBs.
HUGE = 100_000_000
#: Too large for a float64 copy on a CI machine (the conservation check).
NO_FLOAT64 = {"regnet_y_128gf"}


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(set(torchvision.models.list_models(module=torchvision.models)) - EXCLUDED)


def _case(name: str) -> object:
    return pytest.param(name, marks=[pytest.mark.slow])


def _explain(model: nn.Module, size: int) -> torch.Tensor:
    model = randomize_batchnorm(model.eval())
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear) and not m.weight.any():
                m.weight.normal_(0.0, 0.02)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    lrp = lumos.LRP(model, composites.EpsilonPlus())
    if sum(p.numel() for p in model.parameters()) > HUGE:
        return lrp.attribute(x, target=0)
    with untouched(model):
        return lrp.attribute(x, target=0)


def _check(relevance: torch.Tensor, name: str) -> None:
    assert bool(torch.isfinite(relevance).all()), f"{name}: relevance not finite"
    assert bool(relevance.abs().sum() > 0), f"{name}: relevance all zero"


def test_the_whole_torchvision_classification_set_is_listed() -> None:
    names = _torchvision_names()
    assert len(names) == 79, names   # 80 models in torchvision 0.29 less vit_h_14
    cnns = [n for n in names if not n.startswith(TRANSFORMERS)]
    assert len(cnns) == 64


@pytest.mark.parametrize("name", [_case(n) for n in _torchvision_names()])
def test_torchvision_model(name: str) -> None:
    import torchvision

    torch.manual_seed(0)
    kwargs = {"image_size": 32} if name.startswith("vit_") else {}
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    side = SIZES.get(name, 32)
    _check(_explain(model, side), name)
    if name not in NO_FLOAT64:
        x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1),
                        dtype=torch.float64)
        assert_conserves(calibrate(model, side), x, name)
