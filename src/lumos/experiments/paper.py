"""The study of Cik et al. (IEEE SAMI 2021) as one config-driven, resumable pipeline.

Per dataset: **train** (``model.safetensors`` + JSON sidecar; training itself resumes from its
last epoch) → **evaluate** (explain held-out images with every method, pixel flipping, axioms;
``results.safetensors`` + ``results.json``) → **report** (``report.html`` for all datasets run).
A stage whose output exists and was made with the same settings is skipped, so an interrupted
run continues where it stopped. Defaults live in ``paper.toml`` next to this module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lumos.experiments import config, sections, store
from lumos.experiments.methods import Domain, parse
from lumos.experiments.study import (
    Measured,
    Progress,
    Result,
    explain_all,
    measure,
    predict,
    random_attribution,
)
from lumos.viz import report as rp
from lumos.viz.image import to_image

DATASETS = ("mnist", "fashion-mnist", "imagenette", "imagewoof")


def default_config() -> dict[str, Any]:
    """The packaged ``paper.toml``: the settings that reproduce the study."""
    text = resources.files("lumos.experiments").joinpath("paper.toml").read_text("utf-8")
    return config.loads(text, "paper.toml")


def load_config(path: str | Path | None) -> dict[str, Any]:
    """Defaults updated by the file at ``path`` (unknown tables, keys or types are errors)."""
    cfg = default_config()
    if path is None:
        return cfg
    given = config.load(path)
    for table, values in given.items():
        if table not in cfg or not isinstance(values, dict):
            raise config.ConfigError(f"{path}: unknown table [{table}]; known: "
                                     f"{', '.join(cfg)}")
        cfg[table] = config.merge(cfg[table], values, table)
    return cfg


@dataclass
class Data:
    """A dataset ready to train on and to explain."""

    train: Any  # (images, labels) tensors or a Dataset
    test: Any
    classes: list[str]
    mean: list[float]
    std: list[float]


def load_data(name: str, root: Path, download: bool, cfg: dict[str, Any]) -> Data:
    """The dataset ``name`` from ``root`` (downloaded first with ``download``)."""
    from lumos import data

    if name in ("mnist", "fashion-mnist"):
        cls = data.MNIST if name == "mnist" else data.FashionMNIST
        train, test = cls(root, train=True, download=download), cls(root, train=False)
        return Data(train.tensors(), test.tensors(), list(train.classes), [0.0], [1.0])
    return _image_folders(name, root, download, cfg)


def _image_folders(name: str, root: Path, download: bool, cfg: dict[str, Any]) -> Data:
    from lumos import data
    from lumos.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform

    tf = eval_transform(int(cfg["image_size"]))
    kind = data.Imagenette if name == "imagenette" else data.Imagewoof
    train = kind(root, "train", size=cfg["size"], download=download, transform=tf)
    test = kind(root, "val", size=cfg["size"], transform=tf)
    return Data(train, test, list(train.classes), list(IMAGENET_MEAN), list(IMAGENET_STD))


def _limit(split: Any, n: int, seed: int) -> Any:
    """A seeded random ``n`` of ``split``'s samples (all of them when ``n`` is 0 or too big).

    Random rather than a prefix: image folders are stored sorted by class, so the first ``n``
    would hold one or two classes only. Random rather than strided: a stride can alias with a
    split interleaved by class (every 10th of ``0, 1, ..., 9, 0, ...`` is one class).
    """
    total = len(split[0]) if isinstance(split, tuple) else len(split)
    if not n or n >= total:
        return split
    gen = torch.Generator().manual_seed(seed)
    index = torch.randperm(total, generator=gen)[:n].sort().values
    if isinstance(split, tuple):
        return split[0][index], split[1][index]
    return torch.utils.data.Subset(split, index.tolist())


def _tensors(split: Any, n: int) -> tuple[Tensor, Tensor]:
    """``n`` held-out samples spread over the split (image folders are sorted by class)."""
    if isinstance(split, tuple):
        return split[0][:n], split[1][:n]
    index = torch.linspace(0, len(split) - 1, min(n, len(split))).round().long().unique()
    pairs = [split[int(i)] for i in index]
    return torch.stack([p[0] for p in pairs]), torch.tensor([int(p[1]) for p in pairs])


def train_stage(name: str, d: Data, cfg: dict[str, Any], folder: Path, seed: int, device: str,
                progress: Progress) -> nn.Module:
    """Train (or load the finished) model of dataset ``name``."""
    from lumos.models import zoo
    from lumos.models.checkpoint import load_checkpoint, save_checkpoint
    from lumos.train import evaluate, fit, random_shift

    path = folder / "model.safetensors"
    key = store.config_hash(name, cfg, seed, "train")
    if store.finished(folder, "model.json", key):  # the checkpoint's sidecar records the key
        progress.say(f"{name}: train: done already ({path})")
        return load_checkpoint(path)[0].to(device)
    kwargs: dict[str, Any] = {}
    if cfg["model"] in ("resnet18", "vgg16"):
        kwargs = {"n_classes": len(d.classes), "weights": cfg.get("weights") or None}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = zoo.build(cfg["model"], **kwargs)
    progress.say(f"{name}: train: {cfg['model']} for {cfg['epochs']} epoch(s)")
    history = fit(model, _limit(d.train, int(cfg["train_limit"]), seed), None,
                  epochs=int(cfg["epochs"]), batch_size=int(cfg["batch_size"]),
                  lr=float(cfg["lr"]), seed=seed, progress=not progress.quiet,
                  augment=random_shift(int(cfg["shift"])) if cfg["shift"] else None,
                  checkpoint_dir=folder / "train", resume=True, device=device)
    test = evaluate(model, d.test, device=device)
    kwargs.pop("weights", None)
    save_checkpoint(path, model, architecture={"name": cfg["model"], "kwargs": kwargs},
                    dataset=name, classes=d.classes,
                    normalization={"mean": d.mean, "std": d.std},
                    metrics={"test_accuracy": test["accuracy"], "seconds": history.seconds},
                    extra={"config_hash": key})
    return model


def evaluate_stage(name: str, model: nn.Module, d: Data, cfg: dict[str, Any], study: dict[str, Any],
                   folder: Path, progress: Progress) -> tuple[dict[str, Tensor],
                                                              dict[str, Result],
                                                              dict[str, Measured]]:
    """Explain and measure (or load the finished evaluation) of dataset ``name``."""
    key = store.config_hash(name, cfg, study, "evaluate")
    done = store.load(folder, key)
    if done is not None:
        progress.say(f"{name}: evaluate: done already ({folder / 'results.json'})")
        return done[0], done[1], done[2]
    device = next(model.parameters()).device
    x, y = _tensors(d.test, int(cfg["explain"]))
    x, y = x.to(device), y.to(device)
    pred, score = predict(model, x)
    domain = Domain.from_normalization(d.mean, d.std)
    options = {"ig": {"tolerance": cfg["ig_tolerance"], "max_steps": cfg["ig_max_steps"]},
               "smoothgrad": {"seed": study["seed"]}}
    results = explain_all(model, x, pred, [parse(m) for m in cfg["methods"]], domain, options,
                          batch_size=int(study["batch_size"]), progress=progress)
    flip = {"steps": cfg["flip_steps"], "patch": cfg["patch"], "fill": cfg["fill"],
            "score": "softmax"}
    measured = {k: measure(model, x, pred, r.explanation.attribution, flip)
                for k, r in results.items() if r.explanation is not None}
    measured["random"] = measure(model, x, pred, random_attribution(x, study["seed"]), flip)
    from lumos.train import evaluate

    acc = float(evaluate(model, d.test, device=device)["accuracy"])
    tensors = {"x": x, "y": y, "pred": pred, "score": score, "accuracy": torch.tensor([acc])}
    store.save(folder, tensors, results, measured, {"config_hash": key, "dataset": name})
    progress.say(f"{name}: evaluate: {len(x)} images, {len(results)} methods")
    return tensors, results, measured


def families_stage(name: str, model: nn.Module, d: Data, cfg: dict[str, Any],
                   study: dict[str, Any], folder: Path, tensors: dict[str, Tensor],
                   results: dict[str, Result], progress: Progress) -> list[rp.Section]:
    """Every metric family on the first ``family_n`` explained images (cached in
    ``families.json``); one report table per family."""
    from lumos.experiments import families

    n = int(cfg.get("family_n", 0))
    if n <= 0:
        return []
    key = store.config_hash(name, cfg, study, "families")
    path = folder / "families.json"
    result = families.load(path)
    if result is None or result.info.get("config_hash") != key:
        device = next(model.parameters()).device
        options = {"ig": {"tolerance": cfg["ig_tolerance"], "max_steps": cfg["ig_max_steps"]},
                   "smoothgrad": {"seed": study["seed"]}}
        result = families.measure_families(
            model, tensors["x"].to(device), tensors["pred"].to(device), results,
            Domain.from_normalization(d.mean, d.std), options, n, int(study["seed"]), progress)
        result.info["config_hash"] = key
        families.save(result, path)
    else:
        progress.say(f"{name}: metrics by family: done already ({path})")
    return [rp.Section(f"{name}: metrics by family",
                       families.family_tables(result, min(n, len(tensors["x"]))))]


def dataset_sections(name: str, d: Data, cfg: dict[str, Any], tensors: dict[str, Tensor],
                     results: dict[str, Result],
                     measured: dict[str, Measured]) -> list[rp.Section]:
    """The report sections of one dataset."""
    x, y, pred, score = (tensors[k].cpu() for k in ("x", "y", "pred", "score"))
    rows = [int((y == c).nonzero()[0]) for c in range(len(d.classes)) if bool((y == c).any())]
    cn = d.classes
    gallery = sections.gallery(
        name, f"{name}: one held-out image per class",
        lambda i: to_image(x[i], mean=d.mean, std=d.std), rows, [cn[int(y[i])] for i in rows],
        [f"pred {cn[int(pred[i])]} ({float(score[i]):.2f}) / true {cn[int(y[i])]}" for i in rows],
        [bool(pred[i] == y[i]) for i in rows], results, photo=x.shape[1] == 3)
    titles = {k: r.method.title for k, r in results.items()}
    acc = float(tensors["accuracy"][0])
    table = sections.metrics_table(
        results, measured, f"{name}: faithfulness on {len(x)} held-out images (test accuracy "
        f"{acc:.4f})", f"Pixel flipping, {cfg['flip_steps']} steps of {cfg['patch']}x"
        f"{cfg['patch']} patches, fill {cfg['fill']}, softmax score; mean ± standard error.")
    return [rp.Section(f"{name}: heatmaps", [*sections.skipped(results), gallery]),
            rp.Section(f"{name}: faithfulness", [
                table, sections.curves_figure(measured, titles, "morf", "MoRF pixel flipping."),
                sections.curves_figure(measured, titles, "lerf", "LeRF pixel flipping.")]),
            rp.Section(f"{name}: axioms and runtime", [
                *sections.axiom_figures(results, name),
                sections.runtime_figure(results, len(x), name)])]


def run_study(datasets: list[str], root: Path, out: Path, cfg: dict[str, Any], *,
              download: bool = False, device: str = "cpu", quiet: bool = False,
              command: str = "lumos reproduce") -> Path:
    """Run the study on ``datasets``; returns the path of ``out/report.html``."""
    progress = Progress(quiet)
    study = cfg["study"]
    begin = time.perf_counter()
    body: list[rp.Section] = []
    summary: dict[str, str] = {}
    for name in datasets:
        d = load_data(name, root, download, cfg[name])
        folder = out / name
        model = train_stage(name, d, cfg[name], folder, int(study["seed"]), device, progress)
        tensors, results, measured = evaluate_stage(name, model, d, cfg[name], study, folder,
                                                    progress)
        summary[name] = (f"{cfg[name]['model']}, test accuracy "
                         f"{float(tensors['accuracy'][0]):.4f}, {len(tensors['x'])} images "
                         "explained")
        body += dataset_sections(name, d, cfg[name], tensors, results, measured)
        body += families_stage(name, model, d, cfg[name], study, folder, tensors, results,
                               progress)
    summary["time of this run"] = f"{time.perf_counter() - begin:.1f} s (finished stages skipped)"
    report = rp.Report(
        title="lumos: IG and LRP on " + ", ".join(datasets),
        subtitle="Reproduction of Cik et al., IEEE SAMI 2021",
        sections=[rp.Section("Summary", [rp.KeyValues(summary)]), *body,
                  rp.Section("Rerun it", [rp.Text(f"Command: {command}"),
                                          rp.Code(config.dumps(cfg), title="Configuration"),
                                          sections.versions()])])
    path = rp.write(report, out / "report.html")
    progress.say(f"report written: {path}")
    return path
