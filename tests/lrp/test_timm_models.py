"""LRP on popular timm models, as timm builds them: explained and conservative.

The 25 models of issue 23 (attention, hybrids, re-parameterised and gated convolutions) and the
timm CNNs the coverage tests always listed, each built small where timm lets a model be sized
(fewer blocks, a small input: :data:`SMALL`), with random weights. Two checks each
(:mod:`lrp.conservation`): EpsilonPlus gives a finite heatmap that is not all zero in float32
(BatchNorm statistics from random inputs), and CPLRP conserves relevance in float64 with biases
and running means zeroed, to 1e-5 relative. The user's model is untouched.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from helpers import untouched
from lrp.conservation import assert_conserves, assert_explains, calibrate

timm = pytest.importorskip("timm")

_VIT = dict(img_size=64, depth=2)
#: Model name -> (keyword arguments that make it small, input side).
SMALL: dict[str, tuple[dict[str, Any], int]] = {
    "beit_base_patch16_224": (_VIT, 64),
    "swinv2_tiny_window8_256": (dict(img_size=64, window_size=4, depths=(1, 1, 1, 1)), 64),
    "resnetv2_50x1_bit": ({}, 32),
    "poolformerv2_s12": ({}, 32),
    "convnextv2_atto": (dict(depths=(1, 1, 1, 1)), 32),
    "resnest14d": ({}, 32),
    "xcit_tiny_12_p16_224": (_VIT, 64),
    "levit_128s": (dict(img_size=64), 64),
    "fastvit_t8": (dict(layers=(1, 1, 1, 1)), 64),
    "ghostnetv2_100": ({}, 64),
    "tf_efficientnet_b0": ({}, 32),
    "maxvit_tiny_tf_224": (dict(img_size=64, depths=(1, 1, 1, 1)), 64),
    "mobilevit_s": ({}, 64),
    "twins_svt_small": (dict(depths=(1, 1, 1, 1)), 64),
    "edgenext_xx_small": (dict(depths=(1, 1, 1, 1)), 64),
    "mobilenetv4_conv_small": ({}, 32),
    "regnety_016": ({}, 32),
    "vit_small_patch14_reg4_dinov2": (dict(img_size=56, depth=2), 56),
    "deit3_small_patch16_224": (_VIT, 64),
    "coatnet_0_rw_224": (dict(img_size=64), 64),
    "efficientformerv2_s0": (dict(img_size=64), 64),
    "nextvit_small": ({}, 64),
    "mobilenetv4_hybrid_medium": ({}, 64),
    "hrnet_w18_small": ({}, 64),
    "davit_tiny": (dict(depths=(1, 1, 1, 1)), 64),
    # the timm CNNs of the coverage tests
    "resnet50": ({}, 32),
    "efficientnet_b0": ({}, 32),
    "mobilenetv3_large_100": ({}, 32),
    "regnety_008": ({}, 32),
    "densenet121": ({}, 32),
    "inception_v3": ({}, 80),
    "seresnet50": ({}, 32),
    "ghostnet_100": ({}, 32),
    # found by bench/model_sweep.py: linear attention (a pad with ones, a division by the
    # normaliser), rotary embeddings (-x), and families the lists above miss
    "efficientvit_b0": (dict(depths=(1, 1, 1, 1, 1)), 32),
    "vit_tiny_patch16_dinov3_qkvb": (dict(img_size=32, depth=2), 32),   # logits ~1e-4 at 64
    "cait_xxs24_224": (_VIT, 64),
    "starnet_s050": (dict(depths=(1, 1, 1, 1)), 32),
    "test_mambaout": ({}, 64),
    # ... einsum by position tables (SAM; MViTv2's x[index] = v and LowFormer's transposed
    # convolutions take ~100 s each here: their ops are tested in lrp/test_sweep_ops.py)
    "samvit_base_patch16_224": (_VIT, 64),
    # a buffer expanded to the batch in forward; CP-LRP attention weights mixed with a gate
    "convit_tiny": (_VIT, 64),
}


def _x(side: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1),
                       dtype=dtype)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SMALL))
def test_explained_and_conservative(name: str) -> None:
    kwargs, side = SMALL[name]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=5, **kwargs)
    calibrate(model, side, dtype=torch.float32, zero_biases=False)
    with untouched(model):
        assert_explains(model, _x(side, torch.float32), name)
    assert_conserves(calibrate(model, side), _x(side, torch.float64), name)
