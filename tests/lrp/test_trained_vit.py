"""A small ViT trained on mnist-5k: its AttnLRP and CP-LRP heatmaps beat a random attribution
in MoRF AOPC (removing the most relevant pixels first hurts the class score more)."""

from __future__ import annotations

import time

import pytest
import torch
from torch import Tensor, nn

import lumos
from helpers import untouched
from lumos.data.samples import mnist5k
from lumos.lrp import composites
from lumos.metrics import AOPC, evaluate, random_attribution
from lumos.train import evaluate as accuracy
from lumos.train import fit

torchvision = pytest.importorskip("torchvision")


def tiny_vit() -> nn.Module:
    """ViT for 28x28 digits: patch 7 (16 tokens and a class token), 2 blocks of width 64."""
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=28, patch_size=7, num_layers=2, num_heads=4,
                              hidden_dim=64, mlp_dim=128, num_classes=10)
    model.conv_proj = nn.Conv2d(1, 64, 7, 7)   # one input channel
    return model


@pytest.fixture(scope="module")
def trained_vit() -> nn.Module:
    model = tiny_vit()
    start = time.perf_counter()
    fit(model, mnist5k("train"), None, epochs=12, batch_size=64, lr=3e-3, weight_decay=0.05,
        seed=0, progress=False)
    print(f"\ntiny ViT trained in {time.perf_counter() - start:.1f} s")
    return model.eval()


def held_out(n: int) -> tuple[Tensor, Tensor]:
    x, y = mnist5k("test")
    return x[:n], y[:n]


@pytest.mark.slow
def test_trained_vit_heatmaps_beat_random_in_morf_aopc(trained_vit: nn.Module) -> None:
    model = trained_vit
    test = accuracy(model, mnist5k("test"))
    print(f"held-out accuracy {test['accuracy']:.3f}")
    assert test["accuracy"] >= 0.92
    methods = {"AttnLRP": lumos.LRP(model, composites.AttnLRP()),
               "CPLRP": lumos.LRP(model, composites.CPLRP()),
               "random": random_attribution(0)}
    with untouched(model):
        result = evaluate(model, held_out(100), methods, metrics=[AOPC("morf", steps=16)],
                          batch_size=100, progress=False)
    print("\n" + result.table())
    b = result.mean("random", "aopc_morf")
    for good in ("AttnLRP", "CPLRP"):
        g = result.mean(good, "aopc_morf")
        se = result.stderr(good, "aopc_morf") + result.stderr("random", "aopc_morf")
        assert g > b + 5 * se and g > b + 0.25 * abs(b) + 1.0, (good, g, b)
