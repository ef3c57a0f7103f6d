"""lumos.CRP: conservation (Must show 2 on a CNN and a ViT), concept paths, activations read as
the model computes them, batching, and one clear error per bad input."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import lumos
from helpers import untouched
from lumos.crp import CRP
from lumos.lrp import composites

torchvision = pytest.importorskip("torchvision")


def zero_biases(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for m in model.modules():
            bias = getattr(m, "bias", None)
            if isinstance(bias, Tensor):
                bias.zero_()
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.zero_()
    return model


def small_vgg() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.Conv2d(12, 16, 3, padding=1),
        nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 24), nn.ReLU(),
        nn.Linear(24, 5))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
            nn.init.normal_(m.weight, 1.0, 0.2)
    return zero_biases(model).double().eval()


def small_vit(layers: int = 2) -> nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=layers, num_heads=2,
                              hidden_dim=16, mlp_dim=32, num_classes=5)
    nn.init.normal_(model.heads.head.weight, 0.0, 0.2)
    return zero_biases(model).double().eval()


def relative(got: Tensor, want: Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


@pytest.mark.parametrize("composite", [composites.EpsilonPlus(),
                                       composites.EpsilonGammaBox(low=-3.0, high=3.0)])
@pytest.mark.parametrize("layer", ["2", "4", "10"])
def test_cnn_concepts_of_a_layer_add_up_to_the_heatmap(composite: composites.Composite,
                                                        layer: str) -> None:
    model = small_vgg()
    x = torch.randn(3, 3, 12, 12, dtype=torch.float64)
    crp = CRP(model, composite)
    with untouched(model):
        heat = crp.attribute(x, target=[0, 1, 4], layer=layer)
        rel = crp.concept_relevance(x, target=[0, 1, 4], layers=layer)[layer]
    full = lumos.LRP(model, composite).attribute(x, target=[0, 1, 4])
    assert heat.shape == (3, rel.shape[1], 3, 12, 12)
    assert relative(heat.sum(1), full) < 1e-6
    # with zero biases every layer conserves (up to what epsilon absorbs): a concept's
    # heatmap sums to its relevance
    if isinstance(composite, composites.EpsilonPlus):
        assert relative(heat.flatten(2).sum(2), rel) < 1e-4


def test_vit_token_stream_concepts_add_up_to_the_heatmap() -> None:
    model = small_vit()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    composite = composites.CPLRP()
    crp = CRP(model, composite)
    full = lumos.LRP(model, composite).attribute(x, target=[1, 3])
    blocks = ["encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1"]
    for layer in blocks:
        assert crp.shapes([layer], x)[layer] == (16, 17)  # 16 features over 17 tokens
        heat = crp.attribute(x, target=[1, 3], layer=layer)
        assert heat.shape == (2, 16, 3, 32, 32)
        assert relative(heat.sum(1), full) < 1e-6
    # between the blocks nothing is lost (the class token and position embedding, sinks,
    # lie below both)
    rel = crp.concept_relevance(x, target=[1, 3], layers=blocks)
    assert relative(rel[blocks[0]].sum(1), rel[blocks[1]].sum(1)) < 1e-4  # epsilon 1e-6
    # the MLP's hidden units are concepts too (their sum is the MLP branch's share)
    hidden = "encoder.layers.encoder_layer_1.mlp.1"
    assert crp.shapes([hidden], x)[hidden] == (32, 17)
    branch = crp.attribute(x, target=[1, 3], layer=hidden).sum(1)
    assert 0 < float(branch.abs().max()) < float(full.abs().max()) * 10


def test_a_concept_path_splits_its_upper_concept() -> None:
    """Conditioning on an upper concept and, in turn, on every channel of a layer that all its
    relevance passes through adds up to the upper concept's own heatmap."""
    model = small_vgg()
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    crp = CRP(model, composites.EpsilonPlus())
    upper = crp.attribute(x, target=2, layer="8", concepts=[5])[:, 0]
    paths = crp.attribute(x, target=2, conditions=[{"8": 5, "4": c} for c in range(12)])
    assert relative(paths.sum(1), upper) < 1e-6
    split = crp.concept_relevance(x, target=2, layers=["4"], conditions=[{"8": 5}])["4"]
    assert relative(split[:, 0], paths.flatten(2).sum(2)) < 1e-4
    # a concept of several channels is their sum; batching does not change anything
    both = crp.attribute(x, target=2, layer="8", concepts=[[5, 6]], batch_size=1)[:, 0]
    one = crp.attribute(x, target=2, layer="8", concepts=[5, 6], batch_size=3)
    assert relative(both, one.sum(1)) < 1e-9
    explained = crp.explain(x, target=2, layer="8", concepts=[5, 6])
    assert relative(explained.heatmaps, one) < 1e-12
    assert explained.positions[0].shape == (2, 2, 2) and explained.layers == ["8", "8"]
    # up to what epsilon absorbs on the way down
    assert relative(explained.relevance, one.flatten(2).sum(2)) < 1e-3


def test_residual_blocks_and_activations_as_the_model_computes_them(
        resnet18_float64: tuple[nn.Module, Tensor]) -> None:
    model, x = resnet18_float64
    seen: dict[str, Tensor] = {}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda m, i, o, n=n: seen.__setitem__(n, o.detach().clone()))
        for n in ("layer1.0.bn2", "layer2", "fc")]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    crp = CRP(model, composites.EpsilonGammaBox(low=-3.0, high=3.0))
    with untouched(model):
        stats = crp.statistics(x, 1, ["layer1.0.conv2", "layer2", "fc"])
    # conv2 folds bn2 (read as the BatchNorm's output); a block's output; the logits
    for name, hooked in (("layer1.0.conv2", "layer1.0.bn2"), ("layer2", "layer2")):
        assert relative(stats[name]["activation"], seen[hooked].sum((2, 3))) < 1e-9
        assert relative(stats[name]["activation_max"], seen[hooked].amax((2, 3))) < 1e-9
    assert relative(stats["fc"]["activation"], seen["fc"]) < 1e-9
    full = lumos.LRP(model, crp.composite).attribute(x, target=1)
    assert relative(crp.attribute(x, 1, layer="layer2").sum(1), full) < 1e-6
    # a concept of the last layer is a class: only the target's carries relevance
    assert float(stats["fc"]["relevance"][:, [0, 2, 3]].abs().max()) == 0.0


def test_layers_are_module_paths() -> None:
    model = small_vit()
    crp = CRP(model, composites.CPLRP())
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    names = crp.layers(x)
    assert "encoder.layers.encoder_layer_1" in names and "conv_proj" in names
    assert crp.layer("encoder.layers.encoder_layer_1", x).channel_dim == -1
    assert crp.layer("conv_proj", x).channel_dim == 1
    # a layout the guess gets wrong can be named
    tokens = CRP(model, composites.CPLRP(), channel_dims={"encoder.layers.encoder_layer_1": 1})
    assert tokens.channels("encoder.layers.encoder_layer_1", x) == 17


def test_bad_inputs_raise_one_clear_error() -> None:
    model = small_vgg()
    crp = CRP(model)
    x = torch.randn(1, 3, 12, 12, dtype=torch.float64)
    with untouched(model):
        with pytest.raises(ValueError, match=r"no layer 'features.9'.*module paths such as"):
            crp.attribute(x, 0, layer="features.9", concepts=[1])
        with pytest.raises(IndexError, match=r"layer '4' has 12 channels \(0..11\), got "
                                             r"channel 12"):
            crp.attribute(x, 0, layer="4", concepts=[3, 12])
        with pytest.raises(ValueError, match="either layer= and concepts=, or conditions="):
            crp.attribute(x, 0, layer="4", conditions=[{"4": 1}])
        with pytest.raises(ValueError, match="concepts is empty"):
            crp.attribute(x, 0, layer="4", concepts=[])
        with pytest.raises(TypeError, match="wrap a single condition in a list"):
            crp.attribute(x, 0, conditions={"4": 1})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="must be >= 0"):
            crp.attribute(x, 0, layer="4", concepts=[-1])
        with pytest.raises(ValueError, match="NaN"):
            crp.attribute(x * float("nan"), 0, layer="4", concepts=[1])
        with pytest.raises(ValueError, match="name at least one layer"):
            crp.concept_relevance(x, 0, layers=[])
    resnet = torchvision.models.resnet18(num_classes=3).eval()
    with pytest.raises(ValueError, match=r"'layer1\.0\.relu' is called 2 times"):
        CRP(resnet).concept_relevance(torch.randn(1, 3, 32, 32), 0, layers=["layer1.0.relu"])
    with pytest.raises(ValueError, match="must lie on one path"):
        CRP(resnet).attribute(torch.randn(1, 3, 32, 32), 0,
                              conditions=[{"layer2.0.conv2": 1, "layer2.0.downsample.0": 1}])
