"""Captum's LRP (epsilon rule everywhere) agrees with lumos on a plain VGG-style model."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import lumos
from helpers import untouched
from lumos.lrp import composites, rules

captum_lrp = pytest.importorskip("captum.attr")


class PlainVGG(nn.Module):
    """Only layers Captum's LRP supports; the flatten is functional (Captum has no rule for it)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 5))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def test_captum_epsilon_lrp_agrees() -> None:
    model = PlainVGG().double().eval()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    target = torch.tensor([0, 2, 4])
    eps = 1e-9  # Captum's EpsilonRule default, also its MaxPool / AvgPool rule
    composite = composites.LayerMap([
        ((*composites.WEIGHTED, nn.MaxPool2d, nn.AvgPool2d), rules.Epsilon(eps))])
    with untouched(model):
        got = lumos.LRP(model, composite).attribute(x, target=target)
    want = captum_lrp.LRP(model).attribute(x.clone(), target=target).detach()
    for layer in model.modules():  # Captum leaves a `rule` attribute on every layer
        layer.__dict__.pop("rule", None)
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10 * float(want.abs().max()))
