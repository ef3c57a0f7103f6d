"""``--dataset`` specs resolved to a dataset prepared for a classifier (and ``--model`` specs,
resolved by :mod:`lumos.models.specs`).

Datasets: the catalog names (``mnist-5k``, ``mnist``, ``fashion-mnist``, ``imagenette``,
``imagewoof``) and ``folder:DIR``. Each source carries a fingerprint, the part of the store's
settings hash that says *which* weights and *which* files were used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lumos.errors import UserError
from lumos.models.classifier import Classifier
from lumos.models.specs import resolve as load_model
from lumos.models.specs import wrap_module
from lumos.models.tensorio import file_digest

SPLITS = ("train", "test", "all")
#: Model specs are resolved by lumos.models.specs; re-exported for the store's callers.
__all__ = ["SPLITS", "DataSource", "TensorItems", "default_split", "file_digest", "load_data",
           "load_model", "wrap_module"]


@dataclass
class DataSource:
    """A dataset whose items are ``(x, label, status)``, with what the store records of it."""

    dataset: Dataset
    classes: list[str]
    spec: str
    split: str
    fingerprint: list[Any]
    describe: Callable[[int], str] = field(default=lambda i: f"sample {i}")

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


class TensorItems(Dataset):
    """In-memory ``(images, labels)`` as a dataset of ``(x, label, 0)`` items."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        self.x, self.y = x, y.long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, int, int]:
        return self.x[i], int(self.y[i]), 0


def default_split(spec: str) -> str:
    """``all`` for a plain ``folder:DIR`` (no train/val sub-folders), else ``test``."""
    if spec.startswith("folder:"):
        root = Path(spec[7:])
        if not ((root / "train").is_dir() and ((root / "val").is_dir()
                                                or (root / "test").is_dir())):
            return "all"
    return "test"


def load_data(spec: str, clf: Classifier, split: str = "test",
              data_dir: str | os.PathLike[str] | None = None, download: bool = False,
              size: str = "160") -> DataSource:
    """Dataset ``spec`` (split ``train``, ``test`` or ``all``) prepared for ``clf``'s input."""
    from lumos.data import DatasetError, DownloadError, catalog

    if split not in SPLITS:
        raise UserError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    try:
        if spec.startswith("folder:"):
            return _folder(Path(spec[7:]), clf, split)
        if spec not in catalog.DATASETS:
            raise UserError(f"--dataset {spec!r} is not one of {', '.join(catalog.DATASETS)} "
                            "or folder:DIR")
        root = Path(data_dir) if data_dir is not None else catalog.default_root()
        if spec in catalog.GRAYSCALE:
            return _tensors(spec, clf, split, root, download)
        return _imagenette(spec, clf, split, root, download, size)
    except (DatasetError, DownloadError) as err:
        raise UserError(str(err)) from err


def _check_channels(spec: str, channels: int, clf: Classifier) -> None:
    if channels != len(clf.mean):
        raise UserError(f"--dataset {spec} has {channels}-channel images but --model "
                        f"{clf.name} takes {len(clf.mean)} channels")


def _tensors(spec: str, clf: Classifier, split: str, root: Path, download: bool) -> DataSource:
    from lumos.data import catalog

    _check_channels(spec, 1, clf)
    splits = catalog.load(spec, root, download=download)
    parts = {"train": [splits.train], "test": [splits.test],
             "all": [splits.train, splits.test]}[split]
    x = torch.cat([p[0] for p in parts])
    y = torch.cat([p[1] for p in parts])
    if x.shape[-1] != clf.size:
        x = torch.nn.functional.interpolate(x, size=(clf.size, clf.size), mode="bilinear",
                                            align_corners=False, antialias=True)
    mean = torch.tensor(clf.mean).view(1, -1, 1, 1)
    std = torch.tensor(clf.std).view(1, -1, 1, 1)
    return DataSource(TensorItems((x - mean) / std, y), list(splits.classes), spec, split,
                      [spec, split, len(x)])


def _imagenette(spec: str, clf: Classifier, split: str, root: Path, download: bool,
                size: str) -> DataSource:
    from torch.utils.data import ConcatDataset

    from lumos import data
    from lumos.data.transforms import eval_transform

    _check_channels(spec, 3, clf)
    kind = data.Imagenette if spec == "imagenette" else data.Imagewoof
    tf = eval_transform(clf.size, mean=clf.mean, std=clf.std)
    names = {"train": ["train"], "test": ["val"], "all": ["train", "val"]}[split]
    sets = [kind(root, s, size=size, download=download, transform=tf) for s in names]
    items = _Labelled(ConcatDataset(sets) if len(sets) > 1 else sets[0])
    files = [str(p.name) for s in sets for p, _ in s.samples]
    return DataSource(items, list(sets[0].classes), spec, split, [spec, size, split, files])


class _Labelled(Dataset):
    """``(x, label)`` items as ``(x, label, 0)``."""

    def __init__(self, inner: Dataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Tensor, int, int]:
        x, y = self.inner[i]
        return x, int(y), 0


def _folder(root: Path, clf: Classifier, split: str) -> DataSource:
    from lumos.data.folder import ImageFolder, split_samples

    parts = split_samples(root)
    base = root
    if "all" not in parts:  # DIR/train and DIR/val (or DIR/test): real splits
        if split == "all":
            raise UserError(f"folder:{root} has train/val splits; pick --split train or test")
        base = root / (split if split == "train" or (root / "test").is_dir() else "val")
    classes, samples = parts[split]
    ds = ImageFolder(base, clf.size, len(clf.mean), clf.mean, clf.std, samples, classes)
    return DataSource(ds, classes, f"folder:{root}", split, [split, *ds.fingerprint()],
                      ds.describe)


def dataset_masks(dataset: Any, n: int, spec: str) -> Any:
    """Masks of the first ``n`` samples of a ``folder:`` dataset, with one clear error."""
    if not hasattr(dataset, "mask") or not dataset.has_masks():
        raise UserError(f"localisation metrics need masks, and --dataset {spec} has none: put "
                        "DIR/<class>/<name>.mask.png next to each <name>.png (non-zero = where "
                        "the evidence is)")
    return torch.stack([dataset.mask(i) for i in range(n)])
