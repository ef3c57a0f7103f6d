"""``folder:DIR``: an ImageFolder layout (``DIR/<class>/*.png|jpg``) read with Pillow.

Classes are the sub-folders in sorted order; files are sorted within each class. Each image is
prepared for a model: a 1-channel model gets grayscale images resized to ``size x size`` (a
folder of grayscale images stays one channel), a 3-channel model gets RGB images with the
shorter side resized to ``size * 8 / 7`` and the centre ``size x size`` cut out, both
normalised with the model's mean and std.

Localisation masks (optional): ``DIR/<class>/<name>.mask.png`` (any image extension) next to
``<name>.png`` marks where the evidence of that image is: non-zero pixels are inside. It is
resized and cropped like its image (:meth:`ImageFolder.mask`); mask files are never taken for
images, and an image without one has an empty mask.

Problems are reported, never papered over: no class folders, or a class folder with no images,
is a :class:`~lumos.data.mnist.DatasetError` when the folder is opened; an image that cannot be
decoded is reported by the sample's status (:data:`UNREADABLE`) so the caller can name the file
(a worker process cannot raise a one-line error); an image of another size than the model's
input is resized like every image and counted (status :data:`RESIZED`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lumos.data.mnist import DatasetError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
OK, RESIZED, UNREADABLE = 0, 1, 2
#: ``<name>.mask.<ext>`` holds the localisation mask of ``<name>.<ext>``.
MASK_TAG = ".mask"
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def scan(root: str | os.PathLike[str]) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names and ``(path, label)`` pairs of an ImageFolder tree, checked.

    Raises
    ------
    DatasetError
        ``root`` is not a folder, has no class folders, or a class folder holds no images.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise DatasetError(f"folder:{folder}: not a folder")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"folder:{folder}: no class folders; expected {folder}/<class>/*.png")
    samples: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir()
                       if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in IMAGE_EXTENSIONS and not is_mask(p))
        if not files:
            raise DatasetError(f"folder:{folder}: class folder {name!r} holds no images "
                               f"({', '.join(IMAGE_EXTENSIONS[:3])}, ...); add images or "
                               "remove the folder")
        samples += [(p, label) for p in files]
    return classes, samples


def is_mask(path: Path) -> bool:
    """Whether ``path`` is a localisation mask (``<name>.mask.<ext>``)."""
    return path.stem.endswith(MASK_TAG)


def mask_file(image: Path) -> Path | None:
    """The mask file of ``image`` (``<stem>.mask.<ext>``, any image extension), if any."""
    for ext in IMAGE_EXTENSIONS:
        for candidate in (image.with_name(image.stem + MASK_TAG + ext),
                          image.with_name(image.stem + MASK_TAG + ext.upper())):
            if candidate.is_file():
                return candidate
    return None


class ImageFolder(Dataset):
    """Images under ``root/<class>/``, prepared for a model; items ``(x, label, status)``.

    Parameters
    ----------
    root:
        The folder holding one sub-folder per class.
    size:
        Side of the square model input.
    channels:
        1 (grayscale) or 3 (RGB); default: what the first image is.
    mean, std:
        Per-channel normalisation of the ``[0, 1]`` pixels (default: none).
    samples:
        Use these ``(path, label)`` pairs instead of scanning ``root`` (a split of it).
    """

    def __init__(self, root: str | os.PathLike[str], size: int, channels: int | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 samples: list[tuple[Path, int]] | None = None,
                 classes: list[str] | None = None) -> None:
        self.root = Path(root)
        if samples is None or classes is None:
            classes, samples = scan(self.root)
        self.classes, self.samples = list(classes), list(samples)
        self.size = int(size)
        self.channels = channels or detect_channels(self.samples[0][0])
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        self.mean = list(mean) if mean is not None else [0.0] * self.channels
        self.std = list(std) if std is not None else [1.0] * self.channels
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need {self.channels} values each")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, int, int]:
        path, label = self.samples[i]
        try:
            from PIL import Image

            with Image.open(path) as image:
                image.load()
                x, resized = self._prepare(image)
        except Exception:  # any decoder error: reported by status, named by the caller
            return torch.zeros(self.channels, self.size, self.size), label, UNREADABLE
        return x, label, RESIZED if resized else OK

    def _prepare(self, image: Any) -> tuple[Tensor, bool]:
        from lumos.data.transforms import CenterCrop, Resize, to_tensor

        resized = image.size != (self.size, self.size)
        if self.channels == 1:
            gray = image.convert("L")
            x = to_tensor(gray)
            if resized:
                x = Resize((self.size, self.size))(x)
        else:
            x = to_tensor(image.convert("RGB"))
            if resized:
                x = CenterCrop(self.size)(Resize(round(self.size * 8 / 7))(x))
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return (x - mean) / std, resized

    def has_masks(self) -> bool:
        """Whether any image of the folder has a mask file."""
        return any(mask_file(p) is not None for p, _ in self.samples)

    def mask(self, i: int) -> Tensor:
        """Localisation mask of sample ``i``: ``(size, size)`` bool, resized and cropped like the
        image (all False when the image has no mask file).

        Raises
        ------
        DatasetError
            The mask file cannot be read.
        """
        path = mask_file(self.samples[i][0])
        if path is None:
            return torch.zeros(self.size, self.size, dtype=torch.bool)
        from lumos.data.transforms import CenterCrop, Resize, to_tensor

        try:
            from PIL import Image

            with Image.open(path) as image:
                m = (to_tensor(image.convert("L")) > 0).float()
        except Exception as err:
            raise DatasetError(f"cannot read mask {path}: {err}") from err
        if m.shape[1:] != (self.size, self.size):
            m = Resize((self.size, self.size))(m) if self.channels == 1 else \
                CenterCrop(self.size)(Resize(round(self.size * 8 / 7))(m))
        return m[0] > 0.5

    def describe(self, i: int) -> str:
        """The file behind sample ``i`` (for error messages)."""
        return str(self.samples[i][0])

    def fingerprint(self) -> list[Any]:
        """What identifies the folder's content for resuming: classes and relative file names."""
        names = [str(p.relative_to(self.root)) for p, _ in self.samples]
        return [self.classes, len(names), names]


def detect_channels(path: Path) -> int:
    """1 for a grayscale image file, 3 for anything else (or for a file that cannot be read)."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            return 1 if image.mode in _GRAY_MODES else 3
    except Exception:
        return 3


def split_samples(root: Path) -> dict[str, tuple[list[str], list[tuple[Path, int]]]]:
    """Splits of a folder: ``train``/``val``/``test`` sub-trees when it has them, else ``all``.

    With ``DIR/train/<class>/`` and ``DIR/val/`` (or ``DIR/test/``) those are the splits; any
    other folder is one split, ``all``, and ``train``/``test`` are a strided 90/10 cut of it
    (every 10th image is a test image).
    """
    subs = {s for s in ("train", "val", "test") if (root / s).is_dir()}
    if "train" in subs and subs & {"val", "test"}:
        out = {s: scan(root / s) for s in sorted(subs)}
        held = out.get("test") or out["val"]
        out.setdefault("test", held)
        return out
    classes, samples = scan(root)
    idx = np.arange(len(samples))
    test = [samples[i] for i in idx[idx % 10 == 9]]
    train = [samples[i] for i in idx[idx % 10 != 9]]
    return {"all": (classes, samples), "train": (classes, train), "test": (classes, test)}


class Pairs(Dataset):
    """``(x, label)`` items of an :class:`ImageFolder` for training; an unreadable image is a
    :class:`~lumos.data.mnist.DatasetError` naming the file."""

    def __init__(self, folder: ImageFolder) -> None:
        self.folder = folder
        self.classes = folder.classes

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        x, label, status = self.folder[i]
        if status == UNREADABLE:
            raise DatasetError(f"cannot read image {self.folder.describe(i)}")
        return x, label


def channels_of(root: Path) -> int:
    """1 when the folder's first image is grayscale, else 3 (what ``lumos train`` builds for)."""
    first = next(iter(split_samples(root).values()))[1][0][0]
    return detect_channels(first)


def load_splits(root: Path, image_size: int | None = None) -> dict[str, Any]:
    """Train and test :class:`Pairs` of a folder, its classes and normalisation, for training.

    Grayscale folders stay one channel at ``image_size`` (default 28) in ``[0, 1]``; RGB
    folders are ImageNet-normalised at ``image_size`` (default 128).
    """
    from lumos.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    channels = channels_of(root)
    size = image_size or (28 if channels == 1 else 128)
    mean = [0.0] if channels == 1 else list(IMAGENET_MEAN)
    std = [1.0] if channels == 1 else list(IMAGENET_STD)
    parts = split_samples(root)
    out: dict[str, Any] = {"classes": parts["train"][0], "mean": mean, "std": std}
    for split in ("train", "test"):
        classes, samples = parts[split]
        out[split] = Pairs(ImageFolder(root, size, channels, mean, std, samples, classes))
    return out
