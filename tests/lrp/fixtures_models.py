"""Model builders for the preparation tests: torchvision CNNs, EfficientNet-Lite0, and a model
written with functional ops in ``forward``. All float64, eval mode, BatchNorm statistics random
(so that a wrong fold cannot hide behind identity statistics)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TORCHVISION = ("vgg16", "resnet18", "resnet50", "densenet121", "mobilenet_v2")


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                    m.bias.copy_(torch.rand(n, generator=gen) - 0.5)
    return model


def torchvision_model(name: str) -> nn.Module:
    """``torchvision.models.<name>(weights=None)``, float64, eval, random BatchNorm statistics."""
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10)
    return randomize_batchnorm(model.double().eval())


def efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 from ``efficientnet_lite_pytorch`` (the demo's model), float64."""
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    model = EfficientNet.from_name("efficientnet-lite0", num_classes=10)
    return randomize_batchnorm(model.double().eval())


class FunctionalNet(nn.Module):
    """A ReLU CNN written with functional ops in ``forward``: F.relu (in-place), torch.relu,
    ``x.relu()``, residual ``+`` / ``torch.add`` / ``+=``, ``torch.cat``, functional pooling,
    a BatchNorm after a concatenation, ``x.view(x.size(0), -1)``, ``mean``, functional dropout."""

    def __init__(self, in_channels: int = 3, n_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn_cat = nn.BatchNorm2d(16)
        self.conv4 = nn.Conv2d(16, 16, 1)
        self.fc1 = nn.Linear(16 * 4 * 4 + 16, 24)
        self.fc2 = nn.Linear(24, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = F.max_pool2d(x, 2)
        y = torch.relu(self.conv2(x))
        x = torch.add(x, y)
        y = self.conv3(x)
        y += x
        y = y.relu()
        x = torch.cat([x, y], dim=1)
        x = F.relu(self.bn_cat(x))
        x = F.avg_pool2d(self.conv4(x), kernel_size=2)
        pooled = x.mean(dim=(2, 3))
        x = F.adaptive_avg_pool2d(x, 4)
        x = torch.cat([x.view(x.size(0), -1), pooled], 1)
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.relu(self.fc1(x))
        return self.fc2(torch.flatten(x, 1))


def functional_net() -> nn.Module:
    torch.manual_seed(0)
    return randomize_batchnorm(FunctionalNet().double().eval())
