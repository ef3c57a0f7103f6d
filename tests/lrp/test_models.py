"""Preparation on real architectures: torchvision VGG-16, ResNet-18/50, DenseNet-121,
MobileNetV2, ShuffleNetV2, EfficientNet-Lite0 and a functional-ops model, all unchanged by the
user.

Each prepared copy must give the original's outputs (float64, 1e-10 relative) with only
supported module types left, and, for the ReLU networks, LRP-0 everywhere must equal
Gradient x Input (float64, 1e-8; issue 3, Must show #3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn

from helpers import untouched
from lrp.fixtures_models import efficientnet_lite0, functional_net, torchvision_model
from lumos.lrp.capture.prepare import prepare
from lumos.lrp.ops.layers import SUPPORTED

SLOW = pytest.mark.slow
CASES: dict[str, tuple[Callable[[], nn.Module], int]] = {
    "resnet18": (lambda: torchvision_model("resnet18"), 32),
    "mobilenet_v2": (lambda: torchvision_model("mobilenet_v2"), 32),
    "functional": (functional_net, 16),
    "densenet121": (lambda: torchvision_model("densenet121"), 32),
    "efficientnet_lite0": (efficientnet_lite0, 32),
    "resnet50": (lambda: torchvision_model("resnet50"), 32),
    "vgg16": (lambda: torchvision_model("vgg16"), 32),
    # channel shuffle (view / transpose / reshape), chunk and concatenation
    "shufflenet_v2": (lambda: torchvision_model("shufflenet_v2_x0_5"), 32),
}
HEAVY = {"mobilenet_v2", "densenet121", "efficientnet_lite0", "resnet50", "vgg16",
         "shufflenet_v2"}
# ReLU networks (MobileNetV2 and EfficientNet-Lite0 use ReLU6, for which LRP-0 != Gradient x Input)
RELU_NETS = ("resnet18", "functional", "densenet121", "resnet50", "vgg16", "shufflenet_v2")


def _params(names: tuple[str, ...] | list[str]) -> list[object]:
    return [pytest.param(n, marks=SLOW) if n in HEAVY else n for n in names]


@pytest.fixture(scope="module", params=_params(list(CASES)))
def case(request: pytest.FixtureRequest) -> Iterator[tuple[str, nn.Module, torch.Tensor]]:
    build, size = CASES[request.param]
    gen = torch.Generator().manual_seed(1)
    batch = 2 if request.param in RELU_NETS else 1   # float64 depthwise convs are slow on CPU
    x = torch.randn(batch, 3, size, size, generator=gen, dtype=torch.float64)
    yield request.param, build(), x


def test_prepared_copy_gives_the_same_outputs(case: tuple[str, nn.Module, torch.Tensor]) -> None:
    name, model, x = case
    with untouched(model):
        gm = prepare(model, x[:1])
    with torch.no_grad():
        expected, got = model(x), gm(x)
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 1e-10 * scale, name
    shapes: set[torch.fx.Node] = set()  # nodes computed from tensor shapes only
    for node in gm.graph.nodes:
        if node.op == "call_module":
            assert isinstance(gm.get_submodule(node.target), SUPPORTED), (name, node.target)
        if node.op in ("call_function", "call_method"):   # only shape arithmetic may remain
            inputs = node.all_input_nodes
            if node.target in ("size", getattr) or all(n in shapes for n in inputs):
                shapes.add(node)
            assert node in shapes, (name, node.target)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in gm.modules())
    # the prepared graph reads the user's tensors where no rule changed them (BatchNorm folds
    # make new weights), never the user's parameter objects, and never asks for their gradients
    user = {p.data_ptr() for p in model.parameters()} | {b.data_ptr() for b in model.buffers()}
    held = [*gm.parameters(), *gm.buffers()]
    assert user & {t.data_ptr() for t in held}, "unchanged tensors are shared, not copied"
    assert not {id(p) for p in model.parameters()} & {id(t) for t in held}
    assert not any(p.requires_grad for p in gm.parameters())


def _gradient_x_input(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    out = model(x)
    (grad,) = torch.autograd.grad(out.gather(1, target[:, None]).sum(), x)
    return grad * x.detach()


def _lrp0(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    import lumos
    from lumos.lrp import composites, rules

    # LRP-0 on every weighted layer, including BatchNorms that could not be folded (Affine),
    # and no stabiliser anywhere (0 / 0 := 0), so the identity with Gradient x Input is exact.
    def exact(d: torch.Tensor) -> torch.Tensor:
        return torch.where(d == 0, torch.ones_like(d), d)

    composite = composites.Epsilon(epsilon=exact, stabilizer=exact,
                                   layer_map=[(composites.AFFINE, rules.Epsilon(exact))])
    attribution: torch.Tensor = lumos.LRP(model, composite=composite).attribute(x, target=target)
    return attribution


def test_lrp0_equals_gradient_x_input(case: tuple[str, nn.Module, torch.Tensor]) -> None:
    name, model, x = case
    if name not in RELU_NETS:
        pytest.skip(f"{name} uses ReLU6: LRP-0 differs from Gradient x Input by design")
    with torch.no_grad():
        target = model(x).argmax(1)
    expected = _gradient_x_input(model, x, target)
    with untouched(model):
        got = _lrp0(model, x, target)
    assert torch.isfinite(got).all()
    err = (got - expected).abs().max() / expected.abs().max()
    assert err <= 1e-8, f"{name}: LRP-0 vs Gradient x Input relative error {err:.2e}"


def test_float32_check_passes_on_big_activations() -> None:
    """prepare(model, example)'s output check tolerates float32 rounding of folded BatchNorms
    on a ResNet whose activations reach ~1e15 (small running variances), yet stays tight."""
    model = torchvision_model("resnet18").float()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.01, 0.05)
                m.weight.uniform_(1.0, 3.0)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with untouched(model):
        gm = prepare(model, example=x[:1])
    with torch.no_grad():
        expected, got = model(x), gm(x)
    assert expected.abs().max() > 1e10
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()
