"""``--model`` and ``--dataset`` specs resolved to a classifier and a dataset prepared for it.

Models: a lumos checkpoint file, ``mnist5k-cnn``, ``efficientnet-lite0``, a torchvision name
(weights from the torch cache, or ``weights=FILE``) or ``timm:NAME`` (timm's cache, or
``weights=FILE``). Datasets: the catalog names (``mnist-5k``, ``mnist``, ``fashion-mnist``,
``imagenette``, ``imagewoof``) and ``folder:DIR``. Each source carries a fingerprint, the part
of the store's settings hash that says *which* weights and *which* files were used.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from lumos.errors import UserError
from lumos.experiments.photos import Classifier

SPLITS = ("train", "test", "all")


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


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]


def load_model(spec: str, weights: str | os.PathLike[str] | None = None) -> tuple[Classifier,
                                                                                   dict[str, Any]]:
    """The classifier ``spec`` names (eval mode) and its fingerprint for the settings hash."""
    if spec == "mnist5k-cnn":
        from lumos.models.zoo import MNIST5K_RECIPE, mnist5k_cnn, recipe_key

        return (Classifier(mnist5k_cnn(), [str(d) for d in range(10)], [0.0], [1.0], spec, 28),
                {"spec": spec, "recipe": recipe_key(MNIST5K_RECIPE)})
    if spec.startswith("timm:"):
        return _timm(spec[5:], weights)
    path = Path(spec)
    if weights is None and (path.suffix in (".safetensors", ".pt", ".pth") or path.exists()):
        from lumos.experiments.explain_images import load_classifier

        clf = load_classifier(spec)
        return clf, {"spec": path.name, "digest": file_digest(path)}
    if spec == "efficientnet-lite0":
        from lumos.experiments.explain_images import load_classifier

        return load_classifier(spec), {"spec": spec}
    if weights is not None:
        return _torchvision_file(spec, Path(weights))
    from lumos.experiments.explain_images import load_classifier

    clf = load_classifier(spec)
    return clf, {"spec": spec, "weights": "torchvision DEFAULT"}


def wrap_module(model: nn.Module, normalization: tuple[list[float], list[float]] | None,
                input_size: int | None, classes: list[str] | None,
                ) -> tuple[Classifier, dict[str, Any]]:
    """A user's ``nn.Module`` as a classifier: an eval-mode deep copy (the user's model is never
    moved or changed), fingerprinted by its weights."""
    import copy

    if not isinstance(model, nn.Module):
        raise UserError(f"model must be a spec string or a torch.nn.Module, got "
                        f"{type(model).__name__}")
    mean, std = normalization or ([0.0], [1.0])
    size = int(input_size or (28 if len(mean) == 1 else 224))
    own = copy.deepcopy(model).eval()
    h = hashlib.sha256()
    for name, tensor in own.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    if classes is None:
        with torch.no_grad():
            n = int(own(torch.zeros(1, len(mean), size, size)).shape[-1])
        classes = [str(k) for k in range(n)]
    name = type(model).__name__
    return Classifier(own, list(classes), list(mean), list(std), name, size), {
        "spec": name, "digest": h.hexdigest()[:16]}


def _torchvision_file(name: str, weights: Path) -> tuple[Classifier, dict[str, Any]]:
    import torchvision

    from lumos.models.checkpoint import CheckpointError, read_tensors

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise UserError(f"--model {name!r} is not a torchvision classification model name")
    try:
        state = read_tensors(weights)
    except CheckpointError as err:
        raise UserError(str(err)) from err
    model = torchvision.models.get_model(name, weights=None, num_classes=_n_classes(state))
    return _with_state(model, state, name, weights, (224, None, None))


def _timm(name: str, weights: str | os.PathLike[str] | None) -> tuple[Classifier, dict[str, Any]]:
    try:
        import timm
        import timm.data
    except ImportError as err:
        raise UserError("timm:NAME needs timm: pip install timm") from err
    if name not in timm.list_models():
        raise UserError(f"--model timm:{name}: timm has no model {name!r}")
    if weights is None:
        try:
            model = timm.create_model(name, pretrained=True)
        except Exception as err:  # offline and not cached: hub errors differ by version
            raise UserError(f"cannot get pretrained weights for timm:{name} "
                            f"({type(err).__name__}); put them in timm's cache or pass "
                            "--weights FILE") from err
        return _classifier(model, f"timm:{name}", _timm_config(model)), {
            "spec": f"timm:{name}", "weights": "timm pretrained"}
    from lumos.models.checkpoint import CheckpointError, read_tensors

    try:
        state = read_tensors(weights)
    except CheckpointError as err:
        raise UserError(str(err)) from err
    model = timm.create_model(name, pretrained=False, num_classes=_n_classes(state))
    return _with_state(model, state, f"timm:{name}", Path(weights), _timm_config(model))


def _timm_config(model: nn.Module) -> tuple[int, list[float], list[float]]:
    import timm.data

    cfg = timm.data.resolve_data_config({}, model=model)
    return int(cfg["input_size"][-1]), list(cfg["mean"]), list(cfg["std"])


def _n_classes(state: dict[str, Tensor]) -> int:
    """Rows of the last 2-D weight of a state dict: the classifier head's output count."""
    heads = [v for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    if not heads:
        raise UserError("the weights file has no linear layer to read the class count from")
    return int(heads[-1].shape[0])


def _with_state(model: nn.Module, state: dict[str, Tensor], name: str, weights: Path,
                config: tuple[int, list[float] | None, list[float] | None],
                ) -> tuple[Classifier, dict[str, Any]]:
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"--weights {weights} does not fit {name}: {first}") from err
    return _classifier(model, name, config), {"spec": name, "weights": weights.name,
                                              "digest": file_digest(weights)}


def _classifier(model: nn.Module, name: str,
                config: tuple[int, list[float] | None, list[float] | None]) -> Classifier:
    from lumos.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from lumos.models.imagenet_classes import IMAGENET_CLASSES

    size, mean, std = config
    model.eval()
    with torch.no_grad():
        n = int(model(torch.zeros(1, 3, size, size)).shape[-1])
    classes = list(IMAGENET_CLASSES) if n == len(IMAGENET_CLASSES) else [str(k) for k in range(n)]
    return Classifier(model, classes, mean or list(IMAGENET_MEAN), std or list(IMAGENET_STD),
                      name, size)


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
