"""``lumos train``: train one of the study's models on one of its datasets, save a checkpoint.

Writes ``OUT/model.safetensors`` with its ``OUT/model.json`` sidecar (architecture, dataset,
classes, normalisation, metrics, full history) and keeps ``OUT/train/last.safetensors`` after
every epoch, so ``--resume`` continues an interrupted run exactly where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "train a model of the study (cnn, mlp, resnet18, vgg16) on one of its datasets"

MODELS = {"cnn": "mnist-cnn", "mlp": "mnist-mlp", "resnet18": "resnet18", "vgg16": "vgg16"}

# per-dataset defaults; the 28x28 recipe is the one behind lumos.models.zoo.mnist5k_cnn
RECIPES: dict[str, dict[str, Any]] = {
    "mnist-5k": {"model": "cnn", "epochs": 15, "batch_size": 64, "lr": 3e-3, "val": 0.0},
    "mnist": {"model": "cnn", "epochs": 15, "batch_size": 64, "lr": 3e-3, "val": 0.1},
    "fashion-mnist": {"model": "cnn", "epochs": 15, "batch_size": 64, "lr": 3e-3, "val": 0.1},
    "imagenette": {"model": "resnet18", "epochs": 20, "batch_size": 64, "lr": 2e-3, "val": 0.1},
    "imagewoof": {"model": "resnet18", "epochs": 20, "batch_size": 64, "lr": 2e-3, "val": 0.1},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lumos train``."""
    from lumos.data.catalog import DATASETS

    parser.add_argument("--dataset", required=True, metavar="|".join(DATASETS) + "|folder:DIR",
                        help="mnist-5k is embedded; the others are read from --data-dir; "
                             "folder:DIR is an ImageFolder (DIR/<class>/*.png, or DIR/train "
                             "and DIR/val)")
    parser.add_argument("--model", choices=sorted(MODELS),
                        help="default: cnn for the 28x28 sets, resnet18 for Imagenette/woof")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for model.safetensors, model.json and train/")
    parser.add_argument("--epochs", type=int, help="default: the dataset's recipe (15 or 20)")
    parser.add_argument("--batch-size", type=int, help="default: 64")
    parser.add_argument("--lr", type=float, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--val-fraction", type=float,
                        help="share of the train split held out to pick the best epoch "
                             "(default 0.1; 0 for mnist-5k, whose test split is fixed)")
    parser.add_argument("--data-dir", type=Path,
                        help="where datasets live (default: $LUMOS_DATA or ./data)")
    parser.add_argument("--download", action="store_true",
                        help="download a missing dataset from its official URL first")
    parser.add_argument("--size", default="160", choices=("full", "320", "160"),
                        help="Imagenette/Imagewoof copy to read (default: 160)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="square crop for Imagenette/Imagewoof and RGB folders (default: "
                             "128); grayscale folders: 28")
    parser.add_argument("--weights", type=Path,
                        help="fine-tune resnet18/vgg16 from this state dict (safetensors or .pt)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/train/last.safetensors if it exists")


def run(args: argparse.Namespace) -> int:
    """Train, evaluate on the test split, save the checkpoint; prints its path on stdout."""
    import torch

    from lumos.data import catalog
    from lumos.errors import UserError
    from lumos.models import zoo
    from lumos.models.checkpoint import CheckpointError, save_checkpoint
    from lumos.train import evaluate, fit

    recipe = _recipe(args.dataset)
    model_name = MODELS[args.model or recipe["model"]]
    _check_pairing(args.dataset, model_name, args.weights)
    settings = _settings(args, recipe)
    splits = _load(args)
    train, val = catalog.hold_out(splits.train, settings["val_fraction"])
    kwargs: dict[str, Any] = {"n_classes": len(splits.classes)}
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            model = zoo.build(model_name, **kwargs, **_weights(args))
    except CheckpointError as err:
        raise UserError(str(err)) from err
    history = fit(model, train, val, epochs=settings["epochs"],
                  batch_size=settings["batch_size"], lr=settings["lr"], seed=args.seed,
                  augment=_augment(args.dataset), progress=not args.quiet,
                  checkpoint_dir=args.out / "train", resume=args.resume, device=args.device)
    test = evaluate(model, splits.test, device=args.device)
    metrics = {"test_accuracy": test["accuracy"], "test_loss": test["loss"],
               "best_epoch": history.best_epoch, "seconds": history.seconds,
               "history": history.epochs}
    path = save_checkpoint(args.out / "model.safetensors", model,
                           architecture={"name": model_name, "kwargs": kwargs},
                           dataset=args.dataset, classes=splits.classes,
                           normalization={"mean": splits.mean, "std": splits.std},
                           metrics=metrics, extra={"training": {**settings, "seed": args.seed},
                                                   "input_size": _input_size(splits)})
    if not args.quiet:
        print(f"{args.dataset}: test accuracy {test['accuracy']:.4f} "
              f"(best epoch {history.best_epoch}/{settings['epochs']}, "
              f"{history.seconds:.1f} s)", flush=True)
    print(path)
    return 0


def _input_size(splits: Any) -> int:
    """Side of the square input the model was trained on (read back by explain commands)."""
    train = splits.train
    first = train[0][0][0] if isinstance(train, tuple) else train[0][0]
    return int(first.shape[-1])


def _recipe(dataset: str) -> dict[str, Any]:
    from lumos.data import DatasetError
    from lumos.data.catalog import DATASETS, is_grayscale
    from lumos.errors import UserError

    if dataset in RECIPES:
        return RECIPES[dataset]
    if not dataset.startswith("folder:"):
        raise UserError(f"--dataset {dataset!r} is not one of {', '.join(DATASETS)} or "
                        "folder:DIR")
    try:
        return RECIPES["mnist" if is_grayscale(dataset) else "imagenette"]
    except DatasetError as err:
        raise UserError(str(err)) from err


def _settings(args: argparse.Namespace, recipe: dict[str, Any]) -> dict[str, Any]:
    from lumos.errors import UserError

    out = {"epochs": args.epochs or recipe["epochs"],
           "batch_size": args.batch_size or recipe["batch_size"],
           "lr": args.lr or recipe["lr"],
           "val_fraction": recipe["val"] if args.val_fraction is None else args.val_fraction}
    if out["epochs"] < 1 or out["batch_size"] < 1 or out["lr"] <= 0:
        raise UserError("--epochs and --batch-size must be >= 1 and --lr > 0")
    if not 0 <= out["val_fraction"] < 1:
        raise UserError(f"--val-fraction must be in [0, 1), got {out['val_fraction']}")
    return out


def _check_pairing(dataset: str, model_name: str, weights: Path | None) -> None:
    from lumos.data.catalog import is_grayscale
    from lumos.errors import UserError

    small = model_name.startswith("mnist-")
    if small != is_grayscale(dataset):
        kind = "28x28 grayscale" if small else "RGB ImageNet-style"
        raise UserError(f"--model {model_name.removeprefix('mnist-')} is for {kind} images, "
                        f"not {dataset}")
    if weights is not None and small:
        raise UserError("--weights (fine-tuning) applies to resnet18 and vgg16 only")
    if weights is not None and not weights.is_file():
        raise UserError(f"--weights file not found: {weights}")


def _weights(args: argparse.Namespace) -> dict[str, Any]:
    return {"weights": args.weights} if args.weights is not None else {}


def _load(args: argparse.Namespace) -> Any:
    from lumos.data import DatasetError, DownloadError, catalog
    from lumos.errors import UserError

    root = args.data_dir or catalog.default_root()
    try:
        return catalog.load(args.dataset, root, download=args.download, size=args.size,
                            image_size=args.image_size)
    except (DatasetError, DownloadError) as err:
        raise UserError(str(err)) from err


def _augment(dataset: str) -> Any:
    from lumos.data.catalog import is_grayscale
    from lumos.train import random_flip, random_shift

    return random_shift(2) if is_grayscale(dataset) else random_flip()
