"""Shared fixtures: small random models in float64, and the model-untouched helper."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))

from helpers import small_cnn, small_mlp


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


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
