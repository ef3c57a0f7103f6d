"""Shared fixtures: small random models in float64, and the model-untouched helper."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def small_cnn(in_channels: int = 1, n_classes: int = 10, size: int = 12) -> nn.Module:
    """A random conv net with pooling, bias and ReLU; float64."""
    flat = 8 * (size // 2) * (size // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(flat, 16), nn.ReLU(), nn.Linear(16, n_classes),
    ).double().eval()


def small_mlp(n_in: int = 20, n_classes: int = 5) -> nn.Module:
    """A random MLP with tanh and ReLU; float64."""
    return nn.Sequential(nn.Linear(n_in, 32), nn.Tanh(), nn.Linear(32, 16), nn.ReLU(),
                         nn.Linear(16, n_classes)).double().eval()


@pytest.fixture
def cnn() -> nn.Module:
    return small_cnn()


@pytest.fixture
def mlp() -> nn.Module:
    return small_mlp()


@pytest.fixture(scope="session")
def trained_mnist_cnn() -> nn.Module:
    """The study's MnistCNN trained on mnist-5k's train split (``lumos.models.zoo.mnist5k_cnn``).

    Trained once per session (or loaded from the weights cache, ``$LUMOS_CACHE`` or
    ``~/.cache/lumos``); eval mode, float32, test accuracy >= 0.97. Shared: do not modify it.
    """
    from lumos.models.zoo import mnist5k_cnn

    return mnist5k_cnn(seed=0)
