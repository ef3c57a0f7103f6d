"""LXT 2.1's efficient CP-LRP on torchvision ViT-B/16, run in its own process (the reference).

LXT works by patching torchvision's and Zennit's classes globally, so it never runs inside the
test process: ``python tests/lrp/lxt_vit.py OUT.pt`` builds the model of :func:`build` (the same
random weights in every process), explains class :data:`TARGET` of :func:`inputs` with LXT's
torchvision ViT patch map plus Zennit's ``Epsilon(1e-6)`` on ``Linear`` and ``Conv2d`` (through
LXT's Zennit patch), and saves the relevance.
"""

from __future__ import annotations

import sys

import torch
from torch import Tensor, nn

TARGET = 3


def build(image_size: int = 224) -> nn.Module:
    """torchvision ViT-B/16 in float64 with random weights and a random head (seeded)."""
    from torchvision.models import vit_b_16

    torch.manual_seed(0)
    model = vit_b_16(weights=None, image_size=image_size).double().eval()
    with torch.no_grad():   # torchvision initialises the head and the class token to zero
        model.heads.head.weight.normal_(0.0, 0.05)
        model.heads.head.bias.normal_(0.0, 0.05)
        model.class_token.normal_(0.0, 0.02)
    return model


def inputs(image_size: int = 224) -> Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(1, 3, image_size, image_size, generator=gen, dtype=torch.float64)


def lxt_relevance(image_size: int = 224) -> Tensor:
    from lxt.efficient import monkey_patch, monkey_patch_zennit
    from torchvision.models import vision_transformer
    from zennit.composites import LayerMapComposite
    from zennit.rules import Epsilon

    monkey_patch(vision_transformer)
    monkey_patch_zennit()
    model = build(image_size)
    x = inputs(image_size).requires_grad_(True)
    composite = LayerMapComposite([(nn.Linear, Epsilon(1e-6)), (nn.Conv2d, Epsilon(1e-6))])
    composite.register(model)
    try:
        out = model(x)
        out[0, TARGET].backward()
    finally:
        composite.remove()
    assert x.grad is not None
    return (x * x.grad).detach()


if __name__ == "__main__":
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 224
    torch.save(lxt_relevance(size), sys.argv[1])
