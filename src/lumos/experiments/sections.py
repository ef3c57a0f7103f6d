"""Report sections from study results: galleries, the metrics table, curves, axioms, runtimes."""

from __future__ import annotations

import math
import platform
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from lumos.experiments.study import Measured, Result, axiom_gap, mean_se
from lumos.viz import plots
from lumos.viz.image import heatmap
from lumos.viz.report import Block, Figure, Gallery, KeyValues, Note, Row, Table

ImageFn = Callable[[int], Image.Image]


def gallery(name: str, title: str, picture: ImageFn, rows: Sequence[int],
            labels: Sequence[str], captions: Sequence[str], correct: Sequence[bool | None],
            results: Mapping[str, Result], *, cell: int = 112, photo: bool = False,
            percentile: float = 99.5) -> Gallery:
    """Samples x methods: the input, then one heatmap per method that ran.

    ``picture(i)`` draws sample ``i``; ``rows`` index into the explained batch.
    """
    ran = [r for r in results.values() if r.explanation is not None]
    columns = ["input", *(r.method.title for r in ran)]
    kinds: list[Any] = ["input", *(r.method.kind for r in ran)]
    out = []
    for k, i in enumerate(rows):
        images: list[Image.Image | None] = [picture(i)]
        for r in ran:
            assert r.explanation is not None
            images.append(heatmap(r.explanation, index=i, percentile=percentile))
        out.append(Row(label=labels[k], caption=captions[k], correct=correct[k], images=images))
    return Gallery(name=name, columns=columns, kinds=kinds, rows=out, title=title, cell=cell,
                   photo=photo, caption="Red: evidence for the explained class, blue: against "
                   f"it, white: none (each heatmap clipped at its {percentile:g}th percentile "
                   "of |relevance|).")


def skipped(results: Mapping[str, Result]) -> list[Block]:
    """One note per method that could not run, saying why."""
    return [Note(f"{r.method.title} was skipped: {r.error}") for r in results.values()
            if r.explanation is None]


def metrics_table(results: Mapping[str, Result], measured: Mapping[str, Measured],
                  title: str, caption: str) -> Table:
    """Methods x metrics with the best value per column marked."""
    rows: list[tuple[str, list[Any]]] = []
    for key, m in measured.items():
        r = results.get(key)
        morf = mean_se(_aopc(m.morf))
        lerf = mean_se(_aopc(m.lerf))
        gap = axiom_gap(r.explanation) if r is not None and r.explanation is not None else None
        gap_v = mean_se(gap) if gap is not None else None
        error = r.explanation.error if r is not None and r.explanation is not None else None
        error_v = mean_se(error) if error is not None else None
        per_input = (r.seconds / max(1, len(m.morf))) if r is not None else None
        name = r.method.title if r is not None else key
        rows.append((name, [morf, lerf, gap_v, error_v, per_input]))
    return Table(columns=["MoRF AOPC", "LeRF AOPC", "axiom gap (relative)",
                          "map error (estimated)", "seconds / input"],
                 rows=rows, best=["max", "min", "min", None, "min"], title=title,
                 caption=caption)


def _aopc(curve: Tensor) -> Tensor:
    return (curve[:, :1] - curve).mean(1)


def curves_figure(measured: Mapping[str, Measured], titles: Mapping[str, str],
                  order: str, caption: str) -> Figure:
    """Mean pixel-flipping curves (± one standard error) per method."""
    series = {titles.get(k, k): (m.morf if order == "morf" else m.lerf).cpu().numpy()
              for k, m in measured.items()}
    png = plots.curves(series, xlabel="fraction of pixels removed",
                       ylabel="probability of the class",
                       title=f"{order.upper()} pixel flipping")
    return Figure(png, caption=caption, alt=f"{order} pixel-flipping curves")


def axiom_figures(results: Mapping[str, Result], name: str) -> list[Block]:
    """Completeness (IG) and conservation (LRP): sum of relevance against what it should equal."""
    blocks: list[Block] = []
    for r in results.values():
        exp = r.explanation
        if exp is None or exp.delta is None:
            continue
        total = exp.attribution.flatten(1).sum(1).double()
        should = exp.output if exp.baseline_output is None else exp.output - exp.baseline_output
        label = "f(x) - f(x')" if exp.baseline_output is not None else "f_t(x)"
        png = plots.scatter_identity(should.double().tolist(), total.tolist(),
                                     title=f"{r.method.title} ({name})", xlabel=label,
                                     ylabel="sum of relevance")
        gap = axiom_gap(exp)
        worst = float(gap.max()) if gap is not None and gap.numel() else math.nan
        steps = ""
        if exp.n_steps is not None:
            mean_steps = float(exp.n_steps.double().mean())
            steps = f"; gradient evaluations per input: mean {mean_steps:.1f}"
        if exp.error is not None and exp.error.numel():
            steps += (f"; estimated map error |A - IG| / |IG|: median "
                      f"{float(exp.error.double().median()):.2g}, largest "
                      f"{float(exp.error.double().max()):.2g}")
        blocks.append(Figure(png, caption=f"{r.method.title}: points on the diagonal satisfy the "
                             f"axiom; largest relative gap {worst:.2g}{steps}."))
        if exp.layers:
            blocks.append(_layers_figure(r))
    return blocks


def _layers_figure(r: Result) -> Figure:
    assert r.explanation is not None
    exp = r.explanation
    out = exp.output.double().abs().clamp_min(1e-12)
    names = list(exp.layers)
    ratios = torch.stack([exp.layers[n].double() / out for n in names], dim=1)
    png = plots.curves({r.method.title: ratios.cpu().numpy()}, x=list(range(len(names))),
                       xlabel="layer (output → input)", ylabel="relevance sum / f_t(x)",
                       title="conservation per layer")
    return Figure(png, caption=f"{r.method.title}: relevance summed per layer relative to the "
                  f"explained score, {names[0]} … {names[-1]}; 1 everywhere means no relevance "
                  "was absorbed or created.")


def runtime_figure(results: Mapping[str, Result], n: int, name: str) -> Figure:
    """Seconds per input for every method that ran."""
    values = {r.method.title: r.seconds / max(1, n) for r in results.values()
              if r.explanation is not None}
    png = plots.bars(values, title=f"runtime per input ({name})", xlabel="seconds", log=True)
    devices = sorted({r.device for r in results.values() if r.explanation is not None})
    where = ", ".join(_device_name(d) for d in devices) or "cpu"
    return Figure(png, caption=f"Wall-clock seconds per input on this machine, {n} inputs, "
                  f"on {where}.")


def _device_name(device: str) -> str:
    """A device for a caption: the GPU's name, or the CPU with torch's thread count."""
    kind = torch.device(device).type
    if kind == "cpu":
        return f"the CPU with {torch.get_num_threads()} torch threads"
    if kind == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def versions() -> KeyValues:
    """Versions of Python, lumos and the libraries that decide the numbers."""
    items = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("lumos", "torch", "torchvision", "numpy", "pillow", "matplotlib",
                    "scikit-image", "mlxtend", "efficientnet-lite-pytorch"):
        try:
            items[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            items[package] = "not installed"
    items["torch threads"] = str(torch.get_num_threads())
    return KeyValues(items, title="Versions")
