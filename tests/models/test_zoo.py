"""The model zoo: architectures by name, torchvision heads, EfficientNet-Lite0, trained CNN."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lumos.data import mnist5k, photos
from lumos.data.transforms import CenterCrop, Compose, Normalize, Resize
from lumos.models import CheckpointError, MnistCNN, save_checkpoint, zoo
from lumos.models.checkpoint import write_tensors
from lumos.train import evaluate


def test_trained_mnist_cnn_meets_its_accuracy(trained_mnist_cnn: nn.Module) -> None:
    assert isinstance(trained_mnist_cnn, MnistCNN) and not trained_mnist_cnn.training
    assert evaluate(trained_mnist_cnn, mnist5k("test"))["accuracy"] >= 0.97


def test_mnist5k_cnn_loads_from_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMOS_CACHE", str(tmp_path))
    planted = MnistCNN()
    name = f"mnist5k-cnn-{zoo.recipe_key(zoo.MNIST5K_RECIPE)}-seed7.safetensors"
    save_checkpoint(tmp_path / name, planted, architecture=zoo.MNIST5K_RECIPE["architecture"])
    model = zoo.mnist5k_cnn(seed=7)
    assert not model.training
    assert all(torch.equal(a, b) for a, b in zip(planted.state_dict().values(),
                                                 model.state_dict().values(), strict=True))


def test_recipe_key_changes_with_recipe() -> None:
    other = {**zoo.MNIST5K_RECIPE, "epochs": zoo.MNIST5K_RECIPE["epochs"] + 1}
    assert zoo.recipe_key(other) != zoo.recipe_key(zoo.MNIST5K_RECIPE)


def test_build_knows_the_names() -> None:
    assert isinstance(zoo.build("mnist-cnn"), MnistCNN)
    assert zoo.build("mnist-mlp", hidden=[8])(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown architecture 'alexnet'"):
        zoo.build("alexnet")


def test_resnet18_fine_tunes_from_a_weights_file(tmp_path: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    source = torchvision.models.resnet18(weights=None)  # stands in for downloaded ImageNet weights
    write_tensors(tmp_path / "r18.safetensors", source.state_dict())
    model = zoo.resnet18(n_classes=10, weights=tmp_path / "r18.safetensors")
    assert model.fc.out_features == 10
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert torch.equal(model.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 10)
    scratch = zoo.resnet18(n_classes=10)
    assert not torch.equal(scratch.conv1.weight, source.conv1.weight)


def test_weights_for_another_architecture_are_refused(tmp_path: Path) -> None:
    write_tensors(tmp_path / "mlp.safetensors", zoo.build("mnist-mlp").state_dict())
    with pytest.raises(CheckpointError, match="does not fit ResNet"):
        zoo.resnet18(weights=tmp_path / "mlp.safetensors")


@pytest.mark.slow
def test_vgg16_head() -> None:
    pytest.importorskip("torchvision")
    model = zoo.vgg16(n_classes=10)
    assert model.classifier[6].out_features == 10


def test_pretrained_efficientnet_lite0_recognises_photos() -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    clf = zoo.pretrained("efficientnet-lite0")
    assert len(clf.classes) == 1000 and clf.classes[285] == "Egyptian cat"
    assert clf.input_size == 224 and not clf.model.training
    prep = Compose([Resize(256), CenterCrop(224), Normalize(clf.mean, clf.std)])
    pics = photos(["chelsea", "coffee"])
    x = torch.stack([prep(pics["chelsea"]), prep(pics["coffee"])])
    with torch.no_grad():
        top = clf.model(x).argmax(1).tolist()
    assert clf.classes[top[0]] in ("Egyptian cat", "tabby", "tiger cat")
    assert clf.classes[top[1]] in ("espresso", "cup", "coffee mug")
    with pytest.raises(ValueError, match="no pretrained weights"):
        zoo.pretrained("resnet50")


def test_imagenet_class_list_matches_torchvision() -> None:
    meta = pytest.importorskip("torchvision.models._meta")
    from lumos.models.imagenet_classes import IMAGENET_CLASSES

    assert tuple(meta._IMAGENET_CATEGORIES) == IMAGENET_CLASSES
