"""Small stores written by ``lumos.explain_dataset`` and analysed by SpRAy, for the ViRelAy and
CoRelAy checks: 120 mnist-5k digits (one channel, IG and LRP epsilon-plus) and 36 RGB
``folder:`` images under a small ImageNet-normalised CNN (gradient and LRP epsilon-plus)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))

from storefix import make_folder

import lumos
from lumos.analysis import SpraySettings, analyse

#: SpRAy kept small: 8 eigenpairs, two k-means counts (+ the eigengap's), t-SNE only.
FAST = SpraySettings(n_eigen=8, cluster_counts=(2, 3), tsne_max=200, umap=False)
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def _analysed(folder: Path, labels: list[int] | None) -> Path:
    for key in lumos.open_store(folder).methods:
        analyse(folder, key, labels, FAST, progress=False)
    return folder


@pytest.fixture(scope="session")
def mnist_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 mnist-5k digits (12 per class), IG (16 Gauss-Legendre steps) and LRP epsilon-plus,
    SpRAy of classes 0, 1 and 7."""
    folder = tmp_path_factory.mktemp("virelay") / "mnist"
    lumos.explain_dataset("mnist5k-cnn", "mnist-5k", ["ig", "lrp:epsilon-plus"], folder,
                          split="all", limit=120, shard_size=120, batch_size=60,
                          progress=False, ig={"n_steps": 16})
    return _analysed(folder, [0, 1, 7])


def small_rgb_cnn(classes: int = 3, seed: int = 0) -> nn.Module:
    """A random 3-channel CNN for 32x32 inputs."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * 8 * 8, classes)).eval()


@pytest.fixture(scope="session")
def rgb_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 RGB images of a ``folder:`` dataset (3 classes), ImageNet-normalised inputs,
    gradient and LRP epsilon-plus, SpRAy of every class."""
    root = tmp_path_factory.mktemp("virelay")
    images = make_folder(root / "images", classes=("cat", "dog", "fox"), per_class=12,
                         size=32, mode="RGB")
    lumos.explain_dataset(small_rgb_cnn(), f"folder:{images}", ["gradient", "lrp:epsilon-plus"],
                          root / "rgb", progress=False, normalization=IMAGENET, input_size=32,
                          classes=["cat", "dog", "fox"])
    return _analysed(root / "rgb", None)
