"""LRP on today's transformer-era image models, random weights: torchvision ViT, ConvNeXt, MaxViT,
timm ViT, DeiT, Swin and ConvNeXt. Every one gives finite, non-zero relevance under CPLRP (the
ViTs also under AttnLRP, ConvNeXt under the CNN composite EpsilonPlus), the user's model
untouched. torchvision's Swin v1 and v2 (attention hidden from tracing in one function, rebuilt
traceable for the input's size) have their own tests in ``test_swin.py``."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import lumos
from helpers import untouched
from lumos.lrp import composites

torchvision = pytest.importorskip("torchvision")
SLOW = pytest.mark.slow


def _torchvision(name: str, **kwargs: object) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(0)
        model: nn.Module = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
        head = getattr(getattr(model, "heads", None), "head", None)
        if head is not None:   # torchvision initialises the ViT head to zero
            with torch.no_grad():
                head.weight.normal_(0.0, 0.02)
        return model
    return build


def _timm(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        timm = pytest.importorskip("timm")
        torch.manual_seed(0)
        model: nn.Module = timm.create_model(name, pretrained=False).eval()
        return model
    return build


# name -> (builder, input size, extra composites)
MODELS: dict[str, tuple[Callable[[], nn.Module], int, tuple[str, ...]]] = {
    "vit_b_16": (_torchvision("vit_b_16", image_size=32), 32, ("AttnLRP",)),
    "vit_b_32": (_torchvision("vit_b_32", image_size=64), 64, ()),
    "vit_l_16": (_torchvision("vit_l_16", image_size=32), 32, ()),
    "vit_l_32": (_torchvision("vit_l_32", image_size=64), 64, ()),
    "convnext_tiny": (_torchvision("convnext_tiny"), 32, ("EpsilonPlus",)),
    "convnext_small": (_torchvision("convnext_small"), 32, ()),
    "convnext_base": (_torchvision("convnext_base"), 32, ()),
    "convnext_large": (_torchvision("convnext_large"), 32, ()),
    "maxvit_t": (_torchvision("maxvit_t"), 224, ()),
    "timm_vit_small_patch16_224": (_timm("vit_small_patch16_224"), 224, ("AttnLRP",)),
    "timm_deit_small_patch16_224": (_timm("deit_small_patch16_224"), 224, ()),
    "timm_swin_tiny_patch4_window7_224": (_timm("swin_tiny_patch4_window7_224"), 224, ()),
    "timm_convnext_tiny": (_timm("convnext_tiny"), 64, ("EpsilonPlus",)),
}
@SLOW   # 10-60 s each: ~100M-parameter models are built, copied and snapshot
@pytest.mark.parametrize("name", list(MODELS))
def test_transformer_models_get_finite_nonzero_relevance(name: str) -> None:
    build, size, extra = MODELS[name]
    model = build()
    x = torch.randn(1, 3, size, size)
    for composite in ("CPLRP", *extra):
        with untouched(model):
            relevance = lumos.LRP(model, getattr(composites, composite)()).attribute(x, target=1)
        assert relevance.shape == x.shape
        assert bool(torch.isfinite(relevance).all()), (name, composite)
        assert float(relevance.abs().sum()) > 0, (name, composite)
