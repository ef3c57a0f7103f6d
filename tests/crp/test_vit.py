"""Must show 6: concepts of a ViT's token stream on torchvision's ViT-B/16 (random weights) and
on the tiny ViT trained on mnist-5k, with CP-LRP: conditional heatmaps add up to the
unconditional heatmap (float64, biases zeroed) and the concept relevances add up to the
relevance the layer holds."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import lumos
from helpers import untouched
from lumos.crp import CRP
from lumos.lrp import composites

torchvision = pytest.importorskip("torchvision")


def zero_biases(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or name.endswith("in_proj_bias"):
                p.zero_()
    return model


def relative(got: Tensor, want: Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


def check_block(crp: CRP, model: nn.Module, x: Tensor, target: list[int], layer: str,
                concepts: list[list[int]] | None) -> Tensor:
    """Concepts of ``layer`` (None: every channel; else groups of channels that partition
    the layer) add up to the heatmap; returns the concept relevances ``(N, channels)``."""
    full = lumos.LRP(model, crp.composite).attribute(x, target=target)
    with untouched(model):
        heat = crp.attribute(x, target=target, layer=layer, concepts=concepts)
        rel = crp.concept_relevance(x, target=target, layers=layer)[layer]
    channels = crp.channels(layer, x)
    assert rel.shape == (len(x), channels)
    assert heat.shape[1] == (channels if concepts is None else len(concepts))
    assert float(full.abs().amax()) > 0
    assert relative(heat.sum(1), full) < 1e-6
    # (a concept's heatmap sums to less than its relevance: the class token and the position
    # embedding below the blocks are sinks that take their share)
    return rel


@pytest.mark.slow
def test_vit_b_16_token_stream_concepts() -> None:
    """torchvision's ViT-B/16 (12 blocks, width 768) on 32x32 inputs: 4 patches and the class
    token. The 768 features of a block's output are split into 16 concepts of 48 (a concept
    may hold several channels; tests/crp/test_crp.py checks that it is the sum of its
    channels)."""
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None, image_size=32, num_classes=10)
    nn.init.normal_(model.heads.head.weight, 0.0, 0.05)
    model = zero_biases(model).double().eval()
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    crp = CRP(model, composites.CPLRP())
    layer = "encoder.layers.encoder_layer_5"
    assert crp.shapes([layer], x)[layer] == (768, 5)
    groups = [list(range(i, i + 48)) for i in range(0, 768, 48)]
    rel = check_block(crp, model, x, [3], layer, groups)
    # a concept path through two blocks: the relevance of one upper feature splits into the
    # features of the lower block (nothing is lost between blocks with zero biases)
    lower = "encoder.layers.encoder_layer_2"
    best = int(rel[0].abs().argmax())
    held = crp.explain(x, 3, layer=layer, concepts=[best]).relevance
    split = crp.concept_relevance(x, 3, layers=[lower], conditions=[{layer: best}])[lower]
    assert relative(split[0, 0].sum().reshape(1), held[0]) < 1e-4


@pytest.fixture(scope="module")
def trained_tiny_vit() -> nn.Module:
    """The tiny ViT of ``tests/lrp/test_trained_vit.py`` trained briefly on mnist-5k (2 epochs
    instead of its 12: a trained model, not a good one)."""
    from lrp.test_trained_vit import tiny_vit
    from lumos.data.samples import mnist5k
    from lumos.train import evaluate, fit

    model = tiny_vit()
    fit(model, mnist5k("train"), None, epochs=2, batch_size=64, lr=3e-3, weight_decay=0.05,
        seed=0, progress=False)
    model.eval()
    accuracy = evaluate(model, mnist5k("test"))["accuracy"]
    print(f"tiny ViT held-out accuracy after 2 epochs: {accuracy:.3f}")
    assert accuracy >= 0.5
    return model


@pytest.mark.slow
def test_trained_tiny_vit_token_stream_concepts(trained_tiny_vit: nn.Module) -> None:
    from lumos.data.samples import mnist5k

    model = zero_biases(trained_tiny_vit).double()
    x, y = mnist5k("test")
    x, target = x[:3].double(), y[:3].tolist()
    crp = CRP(model, composites.CPLRP())
    blocks = ["encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1"]
    rels = [check_block(crp, model, x, target, layer, None) for layer in blocks]
    # every channel of both blocks in one pass: nothing lost between the blocks
    both = crp.concept_relevance(x, target=target, layers=blocks)
    assert relative(both[blocks[0]], rels[0]) < 1e-9
    assert relative(rels[0].sum(1), rels[1].sum(1)) < 1e-4
    # the MLP's hidden units of the last block are concepts as well
    hidden = "encoder.layers.encoder_layer_1.mlp.1"
    assert crp.shapes([hidden], x)[hidden] == (128, 17)
    heat = crp.attribute(x, target=target, layer=hidden, concepts=[0, 5, 9])
    assert heat.shape == (3, 3, 1, 28, 28) and bool(torch.isfinite(heat).all())
