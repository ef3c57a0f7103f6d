"""The study's datasets by name, ready to train on: splits, class names and normalisation.

``load("mnist-5k")`` and friends give :class:`Splits`: ``train`` and ``test`` as
``(images, labels)`` tensors (the 28x28 sets, held in memory) or as datasets (Imagenette,
Imagewoof, decoded on the fly), plus what a checkpoint sidecar must record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

DATASETS = ("mnist-5k", "mnist", "fashion-mnist", "imagenette", "imagewoof")
GRAYSCALE = ("mnist-5k", "mnist", "fashion-mnist")


@dataclass
class Splits:
    """A dataset's train and test splits with their class names and input normalisation."""

    name: str
    train: tuple[Tensor, Tensor] | Dataset
    test: tuple[Tensor, Tensor] | Dataset
    classes: list[str]
    mean: list[float]
    std: list[float]


def load(name: str, root: str | os.PathLike[str] = "data", *, download: bool = False,
         size: str = "160", image_size: int | None = None) -> Splits:
    """Load dataset ``name`` (one of :data:`DATASETS`, or ``folder:DIR``) from ``root``.

    ``folder:DIR`` is an ImageFolder tree (:func:`lumos.data.folder.load_splits`): its
    ``train``/``val`` sub-folders, or a strided 90/10 cut; grayscale images stay one channel.

    ``size`` picks the published Imagenette/Imagewoof copy and ``image_size`` the square crop
    fed to the model (default 128; shorter side resized to ``image_size * 8 / 7`` first); both
    are ignored for the 28x28 datasets, which take pixels in ``[0, 1]`` without normalisation.
    """
    from lumos import data

    if name.startswith("folder:"):
        from lumos.data.folder import load_splits

        parts = load_splits(Path(name[7:]), image_size)
        return Splits(name, parts["train"], parts["test"], parts["classes"], parts["mean"],
                      parts["std"])
    if name == "mnist-5k":
        return Splits(name, data.mnist5k("train"), data.mnist5k("test"),
                      [str(d) for d in range(10)], [0.0], [1.0])
    if name in ("mnist", "fashion-mnist"):
        cls = data.MNIST if name == "mnist" else data.FashionMNIST
        train = cls(root, train=True, download=download)
        return Splits(name, train.tensors(), cls(root, train=False).tensors(),
                      list(train.classes), [0.0], [1.0])
    if name in ("imagenette", "imagewoof"):
        from lumos.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform

        kind = data.Imagenette if name == "imagenette" else data.Imagewoof
        tf = eval_transform(image_size or 128)
        train_set = kind(root, "train", size=size, download=download, transform=tf)
        return Splits(name, train_set, kind(root, "val", size=size, transform=tf),
                      list(train_set.classes), list(IMAGENET_MEAN), list(IMAGENET_STD))
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def is_grayscale(name: str) -> bool:
    """Whether dataset ``name`` has one-channel images (a folder: its first image decides)."""
    if name.startswith("folder:"):
        from lumos.data.folder import channels_of

        return channels_of(Path(name[7:])) == 1
    return name in GRAYSCALE


def hold_out(split: Any, fraction: float) -> tuple[Any, Any]:
    """Split off every ``1/fraction``-th sample as a validation set; returns ``(rest, val)``.

    Strided rather than a tail, so a split stored sorted by class keeps every class in both
    parts. ``fraction == 0`` returns ``(split, None)``.
    """
    if fraction == 0:
        return split, None
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    n = len(split[0]) if isinstance(split, tuple) else len(split)
    step = max(2, round(1 / fraction))
    is_val = torch.arange(n) % step == step - 1
    if isinstance(split, tuple):
        return (split[0][~is_val], split[1][~is_val]), (split[0][is_val], split[1][is_val])
    keep, val = (~is_val).nonzero().flatten().tolist(), is_val.nonzero().flatten().tolist()
    return Subset(split, keep), Subset(split, val)


def default_root() -> Path:
    """Where datasets live unless told otherwise: ``$LUMOS_DATA`` or ``./data``."""
    return Path(os.environ.get("LUMOS_DATA", "data"))
