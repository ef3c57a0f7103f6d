"""The CRP tests import their oracle harness (:mod:`zcrp`) from this folder; shared models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def resnet18_float64() -> tuple[nn.Module, Tensor]:
    """torchvision's ResNet-18 (4 classes) in float64 eval mode with BatchNorm statistics from
    random inputs (so activations neither vanish nor explode), and two 32x32 inputs."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))
    model = model.double().eval()
    return model, torch.randn(2, 3, 32, 32, dtype=torch.float64)
