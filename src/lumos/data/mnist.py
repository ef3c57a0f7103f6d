"""MNIST and Fashion-MNIST from the four official IDX files (gzipped or not).

Layout: ``root/mnist/`` and ``root/fashion-mnist/`` each hold ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, with or
without ``.gz``. Headers are validated (magic number, element type, dimensions, 28x28 images)
and so is the payload (exact length, labels 0-9, as many labels as images).
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lumos.data.download import Resource, fetch

_UBYTE = 0x08
_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                  "http://yann.lecun.com/exdb/mnist/")
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)


class DatasetError(ValueError):
    """A dataset file exists but is corrupt (bad header, truncated, inconsistent counts)."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is missing; the message names the expected path and where to get it."""


def read_idx(path: str | os.PathLike[str], ndim: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes with ``ndim`` dimensions (gzip detected by content).

    Raises
    ------
    DatasetError
        Wrong magic number, element type or rank, or a payload whose length does not match
        the header (truncated or padded file), or a corrupt gzip stream.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DatasetError(f"{path}: corrupt gzip data ({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    if raw[2] != _UBYTE or raw[3] != ndim:
        raise DatasetError(f"{path}: expected IDX magic {2048 + ndim} (unsigned bytes, {ndim} "
                           f"dims), got {int.from_bytes(raw[:4], 'big')}")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DatasetError(f"{path}: truncated header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = head + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DatasetError(f"{path}: {what}: header {dims} needs {expected} bytes, "
                           f"file has {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims)


class MNIST(Dataset):
    """The MNIST handwritten digits (60,000 train / 10,000 test, 28x28 grayscale).

    Parameters
    ----------
    root:
        Folder holding ``mnist/`` (``fashion-mnist/`` for :class:`FashionMNIST`).
    train:
        The training files (``train-*``) or the test files (``t10k-*``).
    download:
        Fetch missing files from the official mirrors (MD5-checked) first.
    transform:
        Applied to each image, a float tensor ``(1, 28, 28)`` in ``[0, 1]``.

    Attributes
    ----------
    data:
        uint8 tensor ``(N, 28, 28)``.
    targets:
        int64 tensor ``(N,)``.
    """

    folder: ClassVar[str] = "mnist"
    title: ClassVar[str] = "MNIST"
    mirrors: ClassVar[tuple[str, ...]] = _MNIST_MIRRORS
    md5: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    classes: ClassVar[list[str]] = [str(d) for d in range(10)]

    def __init__(self, root: str | os.PathLike[str], train: bool = True, download: bool = False,
                 transform: Callable[[Tensor], Any] | None = None) -> None:
        self.root = Path(root)
        self.train = train
        self.transform = transform
        prefix = "train" if train else "t10k"
        if download:
            self.download(self.root)
        images = read_idx(self._find(f"{prefix}-images-idx3-ubyte"), 3)
        labels = read_idx(self._find(f"{prefix}-labels-idx1-ubyte"), 1)
        self._validate(images, labels)
        self.data = torch.from_numpy(images.copy())
        self.targets = torch.from_numpy(labels.astype(np.int64))

    @classmethod
    def download(cls, root: str | os.PathLike[str], progress: bool = True) -> Path:
        """Fetch the four files into ``root/<folder>/`` (kept if already there and valid)."""
        folder = Path(root) / cls.folder
        for name, digest in cls.md5.items():
            plain = folder / name.removesuffix(".gz")
            if not plain.is_file():
                fetch(Resource(name, tuple(m + name for m in cls.mirrors), md5=(digest,)),
                      folder, progress=progress)
        return folder

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.data[index].unsqueeze(0).float() / 255.0
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])

    def tensors(self) -> tuple[Tensor, Tensor]:
        """All images as float32 ``(N, 1, 28, 28)`` in ``[0, 1]`` and labels, for fast training."""
        return self.data.unsqueeze(1).float() / 255.0, self.targets

    def _find(self, name: str) -> Path:
        folder = self.root / self.folder
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
        url = self.mirrors[0] + name + ".gz"
        raise DatasetNotFoundError(f"{self.title} file missing: expected {folder / name}.gz (or "
                                   f"unzipped {name}); get it from {url}, or pass download=True "
                                   "(CLI: --download)")

    def _validate(self, images: np.ndarray, labels: np.ndarray) -> None:
        where = self.root / self.folder
        if images.shape[1:] != (28, 28):
            raise DatasetError(f"{self.title} images in {where} are {images.shape[1:]}, "
                               "expected 28x28")
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(f"{self.title} in {where}: {images.shape[0]} images but "
                               f"{labels.shape[0]} labels")
        if labels.size and int(labels.max()) >= len(self.classes):
            raise DatasetError(f"{self.title} in {where}: label {int(labels.max())} out of "
                               f"range 0-{len(self.classes) - 1}")


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: 10 kinds of clothing, same format and sizes as MNIST."""

    folder: ClassVar[str] = "fashion-mnist"
    title: ClassVar[str] = "Fashion-MNIST"
    mirrors: ClassVar[tuple[str, ...]] = _FASHION_MIRRORS
    md5: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    classes: ClassVar[list[str]] = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
