"""LXT 2.1's efficient CP-LRP on Hugging Face ``ViTForImageClassification``, in its own process.

The reference for lumos's CPLRP on a Hugging Face model as given. LXT has no ready patch map
for Hugging Face's ViT, so ``python tests/lrp/lxt_hf_vit.py OUT.pt`` assembles one from LXT's
generic Hugging Face patches: ``patch_cp_attention`` on ``modeling_vit`` (no gradient into the
softmax through queries and keys), ``layer_norm_forward`` on ``nn.LayerNorm`` (the identity rule
on the standard deviation), ``non_linear_forward`` on ``GELUActivation`` (the identity rule),
and Zennit's ``Epsilon(1e-6)`` on ``Linear`` and ``Conv2d`` (through LXT's Zennit patch). The
model (:func:`build`: 4 layers, width 192, 64x64 input, float64, random biases) is the same in
every process. These patches change classes globally, which is why they never run in the test
process.
"""

from __future__ import annotations

import sys

import torch
from torch import Tensor, nn

TARGET = 2
SIDE = 64


def build() -> nn.Module:
    """A small ``ViTForImageClassification`` in float64, eager attention, random biases."""
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(hidden_size=192, num_hidden_layers=4, num_attention_heads=3,
                       intermediate_size=768, image_size=SIDE, patch_size=16, num_labels=10,
                       attn_implementation="eager")
    torch.manual_seed(0)
    model = ViTForImageClassification(config).double().eval()
    with torch.no_grad():   # Hugging Face initialises biases to zero
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.05)
    return model


def inputs() -> Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(1, 3, SIDE, SIDE, generator=gen, dtype=torch.float64)


def lxt_relevance() -> Tensor:
    from lxt.efficient import monkey_patch_zennit
    from lxt.efficient.patches import (
        layer_norm_forward,
        non_linear_forward,
        patch_cp_attention,
        patch_method,
    )
    from transformers.activations import GELUActivation
    from transformers.models.vit import modeling_vit
    from zennit.composites import LayerMapComposite
    from zennit.rules import Epsilon

    patch_cp_attention(modeling_vit)
    patch_method(layer_norm_forward, nn.LayerNorm)
    patch_method(non_linear_forward, GELUActivation, keep_original=True)
    monkey_patch_zennit()
    model = build()
    x = inputs().requires_grad_(True)
    composite = LayerMapComposite([(nn.Linear, Epsilon(1e-6)), (nn.Conv2d, Epsilon(1e-6))])
    composite.register(model)
    try:
        model(pixel_values=x).logits[0, TARGET].backward()
    finally:
        composite.remove()
    assert x.grad is not None
    return (x * x.grad).detach()


if __name__ == "__main__":
    torch.save(lxt_relevance(), sys.argv[1])
