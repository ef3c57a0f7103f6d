"""Imagenette and Imagewoof: fast.ai's 10-class subsets of ImageNet, in their official layout.

``root/imagenette2-160/train/n01440764/*.JPEG`` (and ``val/``; ``imagenette2`` for full size,
``imagenette2-320`` for 320 px; ``imagewoof2*`` likewise). Classes are ordered by WordNet id,
as in ImageNet, and carry human names and their ImageNet-1k class index (so ImageNet models can
be evaluated on them directly). Images are decoded with Pillow and always converted to RGB.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from torch.utils.data import Dataset

from lumos.data.download import Resource, extract_tar, fetch
from lumos.data.mnist import DatasetError, DatasetNotFoundError
from lumos.data.transforms import to_tensor

_S3 = "https://s3.amazonaws.com/fast-ai-imageclas/"
_SIZES = {"full": "", "320": "-320", "160": "-160", "320px": "-320", "160px": "-160"}
_EXTENSIONS = (".jpeg", ".jpg", ".png")


class Imagenette(Dataset):
    """Imagenette: 10 easily told apart ImageNet classes (tench, English springer, ...).

    Parameters
    ----------
    root:
        Folder holding ``imagenette2[-320|-160]/`` (or where to download it).
    split:
        ``"train"`` or ``"val"``.
    size:
        ``"full"``, ``"320"`` or ``"160"`` (shorter side in pixels of the published copy).
    download:
        Fetch and extract the official tarball (MD5-checked) if the folder is missing.
    transform:
        Applied to the RGB PIL image; default: float tensor ``(3, H, W)`` in ``[0, 1]``.

    Attributes
    ----------
    classes:
        Human class names, in label order.
    wnids:
        WordNet ids, in label order (the folder names).
    imagenet_index:
        Each class's index among the 1,000 ImageNet-1k classes.
    samples:
        ``(path, label)`` pairs, sorted by class then file name.
    """

    base: ClassVar[str] = "imagenette2"
    title: ClassVar[str] = "Imagenette"
    # wnid -> (name, ImageNet-1k index); wnid order is label order
    wnid_info: ClassVar[dict[str, tuple[str, int]]] = {
        "n01440764": ("tench", 0), "n02102040": ("English springer", 217),
        "n02979186": ("cassette player", 482), "n03000684": ("chain saw", 491),
        "n03028079": ("church", 497), "n03394916": ("French horn", 566),
        "n03417042": ("garbage truck", 569), "n03425413": ("gas pump", 571),
        "n03445777": ("golf ball", 574), "n03888257": ("parachute", 701),
    }
    # size -> accepted MD5 digests of the tarball
    md5: ClassVar[dict[str, tuple[str, ...]]] = {
        "full": ("fe2fc210e6bb7c5664d602c3cd71e612",),
        "320": ("3df6f0d01a2c9592104656642f5e78a3",),
        "160": ("e793b78cc4c9e9a4ccc0c1155377a412",),
    }

    def __init__(self, root: str | os.PathLike[str], split: str = "train", size: str = "full",
                 download: bool = False, transform: Callable[[Any], Any] | None = None) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if size not in _SIZES:
            raise ValueError(f"size must be 'full', '320' or '160', got {size!r}")
        self.root, self.split, self.transform = Path(root), split, transform
        self.size = size.removesuffix("px")
        if download and not self.folder.is_dir():
            self.download(self.root, self.size)
        self.wnids = list(self.wnid_info)
        self.classes = [self.wnid_info[w][0] for w in self.wnids]
        self.imagenet_index = [self.wnid_info[w][1] for w in self.wnids]
        self.samples = self._scan()

    @property
    def folder(self) -> Path:
        """The extracted dataset folder, e.g. ``root/imagenette2-160``."""
        return self.root / f"{self.base}{_SIZES[self.size]}"

    @classmethod
    def url(cls, size: str = "full") -> str:
        """The official tarball URL for ``size``."""
        return f"{_S3}{cls.base}{_SIZES[size]}.tgz"

    @classmethod
    def download(cls, root: str | os.PathLike[str], size: str = "full",
                 progress: bool = True) -> Path:
        """Fetch (resumable, MD5-checked) and safely extract the tarball under ``root``."""
        size = size.removesuffix("px")
        name = f"{cls.base}{_SIZES[size]}"
        folder = Path(root) / name
        if not folder.is_dir():
            archive = fetch(Resource(f"{name}.tgz", (cls.url(size),), md5=cls.md5[size]),
                            root, progress=progress)
            extract_tar(archive, root)
        return folder

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from PIL import Image, UnidentifiedImageError

        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                image = img.convert("RGB")
        except (OSError, UnidentifiedImageError) as err:
            raise DatasetError(f"cannot decode image {path}: {err}") from err
        return (self.transform(image) if self.transform else to_tensor(image)), label

    def _scan(self) -> list[tuple[Path, int]]:
        split_dir = self.folder / self.split
        if not split_dir.is_dir():
            raise DatasetNotFoundError(
                f"{self.title} not found: expected {split_dir}/<wnid>/*.JPEG; download and "
                f"extract {self.url(self.size)} into {self.root}, or pass download=True "
                "(CLI: --download)")
        unknown = sorted(p.name for p in split_dir.iterdir()
                         if p.is_dir() and p.name not in self.wnid_info)
        if unknown:
            raise DatasetError(f"{split_dir} has folders that are not {self.title} classes: "
                               f"{unknown[:3]} (is this the right dataset?)")
        samples = []
        for label, wnid in enumerate(self.wnids):
            class_dir = split_dir / wnid
            if not class_dir.is_dir():
                raise DatasetError(f"{self.title} class folder missing: {class_dir} "
                                   f"({self.classes[label]})")
            samples += [(p, label) for p in sorted(class_dir.iterdir())
                        if p.suffix.lower() in _EXTENSIONS and p.is_file()]
        if not samples:
            raise DatasetError(f"no images found under {split_dir}")
        return samples


class Imagewoof(Imagenette):
    """Imagewoof: 10 dog breeds from ImageNet, hard to tell apart (Australian terrier, ...).

    fast.ai re-published the Imagewoof tarballs once; the MD5 of both releases is accepted.
    """

    base: ClassVar[str] = "imagewoof2"
    title: ClassVar[str] = "Imagewoof"
    wnid_info: ClassVar[dict[str, tuple[str, int]]] = {
        "n02086240": ("Shih-Tzu", 155), "n02087394": ("Rhodesian ridgeback", 159),
        "n02088364": ("Beagle", 162), "n02089973": ("English foxhound", 167),
        "n02093754": ("Border terrier", 182), "n02096294": ("Australian terrier", 193),
        "n02099601": ("Golden retriever", 207), "n02105641": ("Old English sheepdog", 229),
        "n02111889": ("Samoyed", 258), "n02115641": ("Dingo", 273),
    }
    md5: ClassVar[dict[str, tuple[str, ...]]] = {
        "full": ("9aafe18bcdb1632c4249a76c458465ba", "5eaf5bbf4bf16a77c616dc6e8dd5f8e9"),
        "320": ("0f46d997ec2264e97609196c95897a44", "af65be7963816efa949fa3c3b4947740"),
        "160": ("3d200a7be99704a0d7509be2a9fbfe15", "fcd23cc7dfce8837c95a8f9d63a128b7"),
    }
