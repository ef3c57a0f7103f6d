"""Unit tests of LRP model preparation: functional ops → module types, BatchNorm folding,
in-place semantics, provenance, the user's model untouched, one clear error per unsupported thing.
All comparisons in float64."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from helpers import untouched
from lrp.fixtures_models import functional_net, randomize_batchnorm
from lumos.lrp.capture.prepare import prepare
from lumos.lrp.errors import LRPUnsupportedError
from lumos.lrp.ops.layers import SUPPORTED, Affine, Concat, Mean, Reshape, Sum


def _called(gm: fx.GraphModule) -> list[nn.Module]:
    return [gm.get_submodule(n.target) for n in gm.graph.nodes if n.op == "call_module"]


def _same_outputs(model: nn.Module, x: Tensor) -> fx.GraphModule:
    """Prepare ``model`` (checking it stays untouched) and assert equal outputs on ``x``."""
    with untouched(model):
        gm = prepare(model, x[:1])
    with torch.no_grad():
        expected, got = model(x), gm(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1e-10 * expected.abs().max().clamp_min(1e-300)
    assert all(isinstance(m, SUPPORTED) for m in _called(gm))
    return gm


class Wrap(nn.Module):
    """A convolution followed by a functional expression ``fn``."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.conv(x))


X = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

OPS: list[tuple[str, Callable[[Tensor], Tensor], type[nn.Module]]] = [
    ("F.relu", F.relu, nn.ReLU),
    ("F.relu inplace", lambda x: F.relu(x, inplace=True), nn.ReLU),
    ("torch.relu", torch.relu, nn.ReLU),
    ("x.relu()", lambda x: x.relu(), nn.ReLU),
    ("x.relu_()", lambda x: x.relu_(), nn.ReLU),
    ("F.relu6", F.relu6, nn.ReLU6),
    ("F.hardtanh(0, 6)", lambda x: F.hardtanh(x, 0.0, 6.0), nn.ReLU6),
    ("F.hardtanh", lambda x: F.hardtanh(x, -0.5, 0.5), nn.Hardtanh),
    ("x.clamp(min=0)", lambda x: x.clamp(min=0), nn.ReLU),
    ("torch.clamp(0, 6)", lambda x: torch.clamp(x, 0, 6), nn.ReLU6),
    ("x.clip(-1, 1)", lambda x: x.clip(-1.0, 1.0), nn.Hardtanh),
    ("F.leaky_relu", lambda x: F.leaky_relu(x, 0.2), nn.LeakyReLU),
    ("F.elu", lambda x: F.elu(x, alpha=0.5), nn.ELU),
    ("torch.tanh", torch.tanh, nn.Tanh),
    ("x.sigmoid()", lambda x: x.sigmoid(), nn.Sigmoid),
    ("torch.sigmoid", torch.sigmoid, nn.Sigmoid),
    ("F.silu", F.silu, nn.SiLU),
    ("x * sigmoid(x)", lambda x: x * torch.sigmoid(x), nn.SiLU),
    ("F.gelu", lambda x: F.gelu(x, approximate="tanh"), nn.GELU),
    ("F.hardswish", F.hardswish, nn.Hardswish),
    ("F.softplus", lambda x: F.softplus(x, beta=2.0), nn.Softplus),
    ("F.max_pool2d", lambda x: F.max_pool2d(x, 2), nn.MaxPool2d),
    ("F.max_pool2d args", lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), nn.MaxPool2d),
    ("F.avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False), nn.AvgPool2d),
    ("F.adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (2, 3)), nn.AdaptiveAvgPool2d),
    ("F.adaptive_max_pool2d", lambda x: F.adaptive_max_pool2d(x, 1), nn.AdaptiveMaxPool2d),
    ("x.mean(dims)", lambda x: x.mean((2, 3)), Mean),
    ("torch.mean keepdim", lambda x: torch.mean(x, dim=[2, 3], keepdim=True), Mean),
    ("x.mean()", lambda x: x.mean(), Mean),
    ("torch.flatten", lambda x: torch.flatten(x, 1), Reshape),
    ("x.view(size)", lambda x: x.view(x.size(0), -1), Reshape),
    ("x.reshape(shape)", lambda x: x.reshape(x.shape[0], 2, -1), Reshape),
    ("x.permute", lambda x: x.permute(0, 2, 3, 1), Reshape),
    ("transpose.contiguous", lambda x: x.transpose(1, 2).contiguous(), Reshape),
    ("squeeze/unsqueeze", lambda x: x.unsqueeze(1).squeeze(1), Reshape),
    ("slice", lambda x: x[:, :2, 1:], Reshape),
    ("F.pad", lambda x: F.pad(x, (1, 0, 2, 1)), Reshape),
    ("x + y", lambda x: x + x.relu(), Sum),
    ("torch.add", lambda x: torch.add(x, torch.tanh(x)), Sum),
    ("x.add(y)", lambda x: x.add(x.relu()), Sum),
    ("torch.cat", lambda x: torch.cat([x, x.relu()], 1), Concat),
    ("x.chunk", lambda x: x.chunk(2, 1)[1] + x.chunk(2, dim=1)[0].relu(), Reshape),
    ("torch.split", lambda x: (lambda p: torch.cat([p[1], p[0]], 1))(torch.split(x, [1, 3], 1)),
     Reshape),
    ("F.dropout", lambda x: F.dropout(x, 0.5, training=False), nn.Conv2d),
]


@pytest.mark.parametrize(("op", "fn", "kind"), OPS, ids=[o[0] for o in OPS])
def test_functional_op_becomes_its_module(op: str, fn: Callable[[Tensor], Tensor],
                                          kind: type[nn.Module]) -> None:
    gm = _same_outputs(Wrap(fn).double().eval(), X)
    assert any(isinstance(m, kind) for m in _called(gm)), (op, _called(gm))
    assert not any(getattr(m, "inplace", False) for m in _called(gm))


@pytest.mark.parametrize("pad", [nn.ReflectionPad2d((1, 2, 0, 1)), nn.ReplicationPad2d(1),
                                 nn.CircularPad2d(2), nn.ConstantPad2d((0, 1, 1, 0), 0.0)])
def test_padding_modules_become_reshapes(pad: nn.Module) -> None:
    gm = _same_outputs(nn.Sequential(nn.ReLU(), pad).double().eval(), X)
    assert [type(m) for m in _called(gm)] == [nn.ReLU, Reshape]


def test_dropout_disappears_and_modules_are_canonical() -> None:
    model = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True),
                          nn.Dropout2d(0.5), nn.Flatten(), nn.Dropout(), nn.Linear(256, 5),
                          nn.Identity()).double()
    gm = _same_outputs(model.eval(), X)
    model.train()
    kinds = [type(m) for m in _called(gm)]
    assert kinds == [nn.Conv2d, nn.ReLU, Reshape, nn.Linear]
    assert gm.get_submodule("1").padding == (1, 1)  # the symmetric zero pad is folded in
    assert model.training and not gm.training


@pytest.mark.parametrize("layer, bn, shape", [
    (nn.Conv1d(3, 5, 3), nn.BatchNorm1d(5), (2, 3, 9)),
    (nn.Conv2d(3, 5, 3, bias=False), nn.BatchNorm2d(5), (2, 3, 8, 8)),
    (nn.Conv2d(6, 6, 3, groups=6), nn.BatchNorm2d(6), (2, 6, 8, 8)),
    (nn.Conv3d(2, 4, 2), nn.BatchNorm3d(4, affine=False), (2, 2, 4, 4, 4)),
    (nn.Linear(7, 5), nn.BatchNorm1d(5), (3, 7)),
], ids=["conv1d", "conv2d-nobias", "depthwise", "conv3d-noaffine", "linear"])
def test_batchnorm_folds_exactly(layer: nn.Module, bn: nn.Module, shape: tuple[int, ...]) -> None:
    model = randomize_batchnorm(nn.Sequential(layer, bn, nn.ReLU()).double().eval())
    x = torch.randn(*shape, dtype=torch.float64)
    gm = _same_outputs(model, x)
    assert [type(m) for m in _called(gm)] == [type(layer), nn.ReLU]
    assert gm.lumos_origin["0"] == "0"
    folded = gm.get_submodule("0")
    assert folded.weight.data_ptr() != layer.weight.data_ptr()
    assert not folded.weight.requires_grad


class Branchy(nn.Module):
    """A BatchNorm first, and a BatchNorm after a conv whose output a skip also reads."""

    def __init__(self) -> None:
        super().__init__()
        self.bn_in = nn.BatchNorm2d(3)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(self.bn_in(x))
        return self.bn(h) + h


def test_unfoldable_batchnorm_becomes_affine() -> None:
    model = randomize_batchnorm(Branchy().double().eval())
    gm = _same_outputs(model, X)
    kinds = [type(m) for m in _called(gm)]
    assert kinds == [Affine, nn.Conv2d, Affine, Sum]
    assert gm.lumos_origin["bn_in"] == "bn_in" and gm.lumos_origin["bn"] == "bn"
    assert torch.equal(gm.get_submodule("conv").weight, model.conv.weight)


def test_batchnorm_without_running_stats_fails_clearly() -> None:
    model = nn.Sequential(nn.Conv2d(3, 3, 1),
                          nn.BatchNorm2d(3, track_running_stats=False)).double()
    with untouched(model), pytest.raises(LRPUnsupportedError, match=r"without running stat.*'1'"):
        prepare(model, X[:1])


class InplaceAlias(nn.Module):
    """In-place ops whose input is read again afterwards (it must read the mutated value)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        z = F.relu(y, inplace=True)
        w = self.conv(x)
        w.add_(y)
        self.act(w)
        return z + w + y


def test_inplace_ops_keep_their_meaning_and_reused_modules_get_copies() -> None:
    model = InplaceAlias().double().eval()
    gm = _same_outputs(model, X)
    convs = [n.target for n in gm.graph.nodes
             if n.op == "call_module" and isinstance(gm.get_submodule(n.target), nn.Conv2d)]
    assert len(set(convs)) == 2 and {gm.lumos_origin[c] for c in convs} == {"conv"}


class SharedConv(nn.Module):
    """Convs called twice: once followed by a BatchNorm, once after a zero padding; and a
    reflect-padded conv twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)
        self.bn = nn.BatchNorm2d(3)

        self.reflect = nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect")

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn(self.conv(x)) + self.conv(F.pad(x, (1, 1, 1, 1)))[:, :, 1:-1, 1:-1]
        return self.reflect(self.reflect(y))


def test_folding_into_a_shared_layer_leaves_its_other_calls_alone() -> None:
    model = randomize_batchnorm(SharedConv().double().eval())
    gm = _same_outputs(model, X)
    assert gm.get_submodule("conv").padding == (0, 0)
    assert gm.get_submodule("conv_1").padding == (1, 1)


def test_prepared_model_prepares_again() -> None:
    model = functional_net()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    gm = prepare(model, x[:1])
    again = _same_outputs(gm, x)
    assert [type(m) for m in _called(again)] == [type(m) for m in _called(gm)]


def test_functional_net_provenance() -> None:
    model = functional_net()
    with untouched(model):
        gm = prepare(model, example=torch.randn(1, 3, 16, 16, dtype=torch.float64))
    origin = gm.lumos_origin
    assert isinstance(gm.get_submodule("bn_cat"), Affine) and origin["bn_cat"] == "bn_cat"
    assert "bn1" not in origin and isinstance(gm.get_submodule("conv1"), nn.Conv2d)
    assert len(set(origin)) == len(origin) == len(_called(gm))
    sums = [n for n, m in gm.named_modules() if isinstance(m, Sum)]
    assert len(sums) == 2 and all(origin[s] == s for s in sums)


class SameConv(nn.Conv2d):
    """A conv subclass whose forward pads itself (like EfficientNet's static 'same' padding)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, (0, 1, 0, 1)), self.weight, self.bias, self.stride, 0)


class PlainConv(nn.Conv2d):
    """A subclass that keeps nn.Conv2d's forward: it stays a leaf of its own type."""


def test_subclasses_count() -> None:
    model = randomize_batchnorm(nn.Sequential(
        PlainConv(3, 4, 3), SameConv(4, 4, 3, stride=2), nn.BatchNorm2d(4)).double().eval())
    gm = _same_outputs(model, X)
    kinds = [type(m) for m in _called(gm)]
    assert kinds == [PlainConv, Reshape, nn.Conv2d]
    assert gm.lumos_origin["1"] == "1"


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_non_zero_padding_modes_become_explicit_pads(mode: str) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=(1, 2), padding_mode=mode)).double()
    gm = _same_outputs(model.eval(), X)
    assert [type(m) for m in _called(gm)] == [Reshape, nn.Conv2d]
    assert gm.get_submodule("0").padding == (0, 0) and model[0].padding == (1, 2)


class Branch(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x if x.sum() > 0 else -x


class Net(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 1)
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        return self.block(self.stem(x))


@pytest.mark.parametrize("block, message", [
    (Branch(), r"cannot capture .*bool\(\).*input's data.*'block' at .*test_prepare\.py:\d+"),
    (Wrap(lambda x: x.cumsum(1)), r"cumsum in module 'block'"),
    (Wrap(lambda x: x.exp()), r"operation Tensor\.exp in module 'block'"),
    (Wrap(lambda x: F.max_pool2d(x, 2, return_indices=True)[0]),
     r"max_pool2d_with_indices .*'block'"),
    (Wrap(lambda x: F.softmax(x, dim=None)), r"softmax without a constant dim .*'block'"),
    (Wrap(lambda x: x.clamp(max=1.0)), r"clamp with .*'block'"),
], ids=["control-flow", "cumsum", "exp", "return-indices", "softmax-no-dim", "clamp-max"])
# (x / y by an activation and transposed convolutions have rules now: lrp/test_sweep_ops.py)
def test_unsupported_is_one_clear_error(block: nn.Module, message: str) -> None:
    model = Net(block).double().train()
    with untouched(model), pytest.raises(LRPUnsupportedError, match=message) as info:
        prepare(model, torch.randn(1, 3, 8, 8, dtype=torch.float64))
    assert "no LRP rule" in str(info.value) or "cannot capture" in str(info.value)


def test_bad_argument() -> None:
    with pytest.raises(TypeError, match=r"nn\.Module"):
        prepare(lambda x: x)  # type: ignore[arg-type]


def test_user_hooks_stay_and_never_run() -> None:
    model = functional_net()
    calls: list[str] = []
    model.conv1.register_forward_hook(lambda *_: calls.append("hook"))
    with untouched(model):
        gm = prepare(model, example=torch.randn(1, 3, 16, 16, dtype=torch.float64))
    gm(torch.randn(1, 3, 16, 16, dtype=torch.float64))
    assert calls == [] and len(model.conv1._forward_hooks) == 1
