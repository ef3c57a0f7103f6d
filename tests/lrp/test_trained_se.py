"""A squeeze-excitation CNN trained on mnist-5k: LRP explains it better than chance.

The model is trained here (seconds on 2 CPU cores) with torchvision's ``SqueezeExcitation``
gates after both convolution blocks. Its EpsilonPlus heatmaps (the gates held constant, the CNN
composites' default) must beat a random attribution on MoRF AOPC by a clear margin; the uniform
product rule is measured beside them.
"""

from __future__ import annotations

import time

import pytest
import torch
from torch import Tensor, nn

import lumos
from helpers import untouched
from lumos.data.samples import mnist5k
from lumos.lrp import composites, rules
from lumos.metrics import AOPC, evaluate, random_attribution


class SECNN(nn.Module):
    """Two conv blocks (conv, BatchNorm, ReLU, max-pool, squeeze-excitation), two dense layers."""

    def __init__(self, channels: tuple[int, int] = (16, 32)) -> None:
        from torchvision.ops import SqueezeExcitation

        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            SqueezeExcitation(c1, 4),
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
            SqueezeExcitation(c2, 8))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c2 * 7 * 7, 64), nn.ReLU(),
                                        nn.Linear(64, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


EPOCHS = 10


@pytest.fixture(scope="module")
def trained_se_cnn() -> nn.Module:
    from lumos.train import evaluate as accuracy
    from lumos.train import fit, random_shift

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SECNN()
    start, cpu = time.perf_counter(), time.process_time()
    fit(model, mnist5k("train"), None, epochs=EPOCHS, batch_size=64, lr=3e-3, seed=0,
        augment=random_shift(2), progress=False)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    acc = accuracy(model, mnist5k("test"))["accuracy"]
    print(f"\nSE-CNN: held-out accuracy {acc:.4f} after {seconds:.1f} s of training "
          f"({cpu:.1f} CPU seconds)")
    assert acc >= 0.97
    return model.eval()


@pytest.mark.slow
def test_se_cnn_lrp_beats_random_in_morf_aopc(trained_se_cnn: nn.Module) -> None:
    model = trained_se_cnn
    uniform = composites.EpsilonPlus(layer_map=[(composites.PRODUCT, rules.Uniform())])
    methods = {"EpsilonPlus": lumos.LRP(model, composites.EpsilonPlus()),
               "EpsilonPlus, uniform products": lumos.LRP(model, uniform),
               "random": random_attribution(0)}
    x, y = mnist5k("test")
    with untouched(model):
        result = evaluate(model, (x[:200], y[:200]), methods,
                          metrics=[AOPC("morf", steps=16)], batch_size=100, progress=False)
    print("\n" + result.table())
    g, b = result.mean("EpsilonPlus", "aopc_morf"), result.mean("random", "aopc_morf")
    se = result.stderr("EpsilonPlus", "aopc_morf") + result.stderr("random", "aopc_morf")
    assert g > b + 5 * se and g > b + 0.25 * abs(b) + 1.0, (g, b)
