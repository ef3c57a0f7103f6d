"""lumos LRP equals Zennit 0.5.1 with the same composite, in float64, on torchvision models.

Zennit runs with its VGG / ResNet canonizers; lumos prepares the model itself. Both start from
``f_t(x)`` at the target class. Random weights (BatchNorm statistics randomised too, so folding is
exercised) and small inputs keep the run short.

BatchNorm ``eps`` is set to 0 in these models: Zennit 0.5.1's merge folds a BatchNorm into the
convolution but leaves the BatchNorm's ``eps`` in place, so its canonized model computes
``x / sqrt(1 + eps)`` where the original computes ``x`` (a 5e-6 relative change per BatchNorm at
the default eps). lumos folds exactly; with ``eps = 0`` both describe the same function.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import lumos
from helpers import untouched
from lumos.lrp import composites

zennit_attribution = pytest.importorskip("zennit.attribution")
zennit_composites = pytest.importorskip("zennit.composites")
zennit_torchvision = pytest.importorskip("zennit.torchvision")
torchvision = pytest.importorskip("torchvision")

COMPOSITES: dict[str, tuple[Callable[[], object], Callable[[], composites.Composite]]] = {
    "EpsilonGammaBox": (lambda: zennit_composites.EpsilonGammaBox(low=-3.0, high=3.0),
                        lambda: composites.EpsilonGammaBox(low=-3.0, high=3.0)),
    "EpsilonPlus": (zennit_composites.EpsilonPlus, composites.EpsilonPlus),
    "EpsilonAlpha2Beta1": (zennit_composites.EpsilonAlpha2Beta1, composites.EpsilonAlpha2Beta1),
}


def randomise_batchnorm(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 0.0
            m.running_mean.normal_(0.0, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            nn.init.normal_(m.weight, 1.0, 0.2)
            nn.init.normal_(m.bias, 0.0, 0.2)
    return model.double().eval()


def zennit_lrp(model: nn.Module, composite: object, x: Tensor, target: list[int]) -> Tensor:
    def start(out: Tensor) -> Tensor:
        return torch.eye(out.shape[1], dtype=out.dtype)[target] * out

    with zennit_attribution.Gradient(model, composite) as attributor:
        _, relevance = attributor(x, start)
    return relevance


def compare(model: nn.Module, canonizer: object, name: str) -> None:
    zennit_make, lumos_make = COMPOSITES[name]
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    target = [3]
    with untouched(model):
        got = lumos.LRP(model, lumos_make()).attribute(x, target=target)
    composite = zennit_make()
    composite.canonizers = [canonizer]  # type: ignore[attr-defined]
    want = zennit_lrp(model, composite, x, target)
    scale = want.abs().max()
    assert float((got - want).abs().max() / scale) < 1e-8
    assert float((got.sum() - want.sum()).abs() / want.abs().sum()) < 1e-8


@pytest.fixture(scope="module")
def vgg16() -> nn.Module:
    torch.manual_seed(0)
    return randomise_batchnorm(torchvision.models.vgg16(weights=None, num_classes=10))


@pytest.fixture(scope="module")
def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return randomise_batchnorm(torchvision.models.resnet18(weights=None, num_classes=10))


@pytest.mark.slow
@pytest.mark.parametrize("name", COMPOSITES)
def test_vgg16_equals_zennit(vgg16: nn.Module, name: str) -> None:
    compare(vgg16, zennit_torchvision.VGGCanonizer(), name)


@pytest.mark.slow
@pytest.mark.parametrize("name", COMPOSITES)
def test_resnet18_equals_zennit(resnet18: nn.Module, name: str) -> None:
    compare(resnet18, zennit_torchvision.ResNetCanonizer(), name)


def test_vgg_with_batchnorm_equals_zennit() -> None:
    """A small VGG-style net with BatchNorm (folded on both sides), EpsilonGammaBox."""
    model = randomise_batchnorm(nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(32, 10), nn.ReLU(), nn.Linear(10, 5)))
    x = torch.randn(3, 3, 12, 12, dtype=torch.float64)
    got = lumos.LRP(model, composites.EpsilonGammaBox(-3.0, 3.0)).attribute(x, target=[0, 1, 2])
    composite = zennit_composites.EpsilonGammaBox(
        low=-3.0, high=3.0, canonizers=[zennit_torchvision.VGGCanonizer()])
    want = zennit_lrp(model, composite, x, [0, 1, 2])
    assert float((got - want).abs().max() / want.abs().max()) < 1e-8



def mobilenet_canonizer() -> object:
    """A Zennit canonizer for torchvision's MobileNetV2, like Zennit's own ResNet one.

    Residual sums become Zennit ``Sum`` modules and the functional average pool a module, so
    both take the Norm rule (without it Zennit would pass relevance through them unchanged).
    """
    from zennit.canonizers import AttributeCanonizer
    from zennit.layer import Sum as ZennitSum

    def residual(self: nn.Module, x: Tensor) -> Tensor:
        return self.canonizer_sum(torch.stack([x, self.conv(x)], dim=-1))

    def network(self: nn.Module, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.canonizer_pool(self.features(x)), 1))

    def attributes(name: str, module: nn.Module) -> dict[str, object] | None:
        if isinstance(module, torchvision.models.mobilenetv2.InvertedResidual) and \
                module.use_res_connect:
            return {"forward": residual.__get__(module), "canonizer_sum": ZennitSum()}
        if isinstance(module, torchvision.models.MobileNetV2):
            return {"forward": network.__get__(module), "canonizer_pool": nn.AdaptiveAvgPool2d(1)}
        return None

    return AttributeCanonizer(attributes)


@pytest.mark.slow
def test_mobilenet_v2_equals_zennit() -> None:
    """Depthwise convolutions, ReLU6 and BatchNorm chains, EpsilonGammaBox.

    Zennit has no MobileNet canonizer; it gets its BatchNorm merge and the small one above.
    """
    from zennit.canonizers import SequentialMergeBatchNorm

    torch.manual_seed(0)
    model = randomise_batchnorm(torchvision.models.mobilenet_v2(weights=None, num_classes=10))
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with untouched(model):
        got = lumos.LRP(model, composites.EpsilonGammaBox(-3.0, 3.0)).attribute(x, target=[3])
    composite = zennit_composites.EpsilonGammaBox(
        low=-3.0, high=3.0, canonizers=[SequentialMergeBatchNorm(), mobilenet_canonizer()])
    want = zennit_lrp(model, composite, x, [3])
    assert float((got - want).abs().max() / want.abs().max()) < 1e-8
