"""Architectures by name: what a checkpoint sidecar records and :func:`build` makes again.

``mnist-cnn``, ``mnist-mlp`` (the study's 28x28 classifiers), ``resnet18``, ``vgg16``
(torchvision, imported lazily, with an ``n_classes`` head, from scratch or from a weights file)
and ``efficientnet-lite0``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from torch import nn

from lumos.models.cnn import MnistCNN, MnistMLP
from lumos.models.tensorio import CheckpointError, read_tensors


def build(name: str, **kwargs: Any) -> nn.Module:
    """A fresh (untrained) model by architecture name.

    Names: ``mnist-cnn``, ``mnist-mlp``, ``resnet18``, ``vgg16``, ``efficientnet-lite0``.
    """
    makers: dict[str, Callable[..., nn.Module]] = {
        "mnist-cnn": MnistCNN, "mnist-mlp": MnistMLP, "resnet18": resnet18, "vgg16": vgg16,
        "efficientnet-lite0": _efficientnet_lite0,
    }
    if name not in makers:
        raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(makers)}")
    return makers[name](**kwargs)


def resnet18(n_classes: int = 10, weights: str | os.PathLike[str] | None = None) -> nn.Module:
    """torchvision ResNet-18 with an ``n_classes`` head; from scratch, or from a weights file.

    ``weights`` is a state dict file (safetensors, or ``.pt``/``.pth`` read with
    ``weights_only=True``), e.g. torchvision's ImageNet ResNet-18 weights downloaded by the
    user. Every tensor is loaded except a final layer whose shape does not fit ``n_classes``.
    """
    models = _torchvision_models()
    model = models.resnet18(weights=None)
    _load_backbone(model, weights)
    model.fc = nn.Linear(model.fc.in_features, n_classes)
    if weights is not None:
        _load_head_if_fits(model, weights, "fc")
    return model


def vgg16(n_classes: int = 10, weights: str | os.PathLike[str] | None = None) -> nn.Module:
    """torchvision VGG-16 with an ``n_classes`` head; from scratch, or from a weights file.

    See :func:`resnet18` for ``weights``; the replaced layer is ``classifier.6``.
    """
    models = _torchvision_models()
    model = models.vgg16(weights=None)
    _load_backbone(model, weights)
    last = model.classifier[6]
    assert isinstance(last, nn.Linear)
    model.classifier[6] = nn.Linear(last.in_features, n_classes)
    if weights is not None:
        _load_head_if_fits(model, weights, "classifier.6")
    return model


def _efficientnet_lite0() -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ImportError("EfficientNet-Lite0 needs efficientnet-lite-pytorch: "
                          "pip install 'lumos[demo]'") from err
    return EfficientNet.from_name("efficientnet-lite0")


def _torchvision_models() -> Any:
    try:
        import torchvision.models
    except ImportError as err:
        raise ImportError("ResNet-18 and VGG-16 come from torchvision: "
                          "pip install 'lumos[vision]'") from err
    return torchvision.models


def _load_backbone(model: nn.Module, weights: str | os.PathLike[str] | None) -> None:
    """Load every tensor of ``weights`` whose name and shape fit ``model`` (the head may not)."""
    if weights is None:
        return
    state = read_tensors(weights)
    own = model.state_dict()
    unknown = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state)
    if unknown or missing:
        raise CheckpointError(f"{weights} does not fit {type(model).__name__}: "
                              f"missing {missing[:3]}, unexpected {unknown[:3]}")
    fitting = {k: v for k, v in state.items() if v.shape == own[k].shape}
    model.load_state_dict(fitting, strict=False)


def _load_head_if_fits(model: nn.Module, weights: str | os.PathLike[str], head: str) -> None:
    """Keep the file's head when it already has the right number of classes (fine-tune resume)."""
    state = read_tensors(weights)
    own = model.state_dict()
    part = {k: v for k, v in state.items()
            if k.startswith(head + ".") and v.shape == own[k].shape}
    model.load_state_dict(part, strict=False)
