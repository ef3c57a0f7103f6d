"""Explain a user's own image files under a checkpoint or a pretrained model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from lumos.experiments import sections
from lumos.experiments.methods import Method
from lumos.experiments.photos import transform
from lumos.experiments.study import Progress, explain_all, predict
from lumos.models.classifier import Classifier
from lumos.viz import report as rp
from lumos.viz.image import heatmap, overlay, save_png, to_image


def load_classifier(spec: str) -> Classifier:
    """The classifier ``spec`` names (:func:`lumos.models.specs.resolve`).

    Raises
    ------
    lumos.errors.UserError
        One line saying what is wrong: missing file, damaged checkpoint, unknown name, weights
        not available offline.
    """
    from lumos.models.specs import resolve

    return resolve(spec)[0]


def load_images(paths: Sequence[Path], clf: Classifier) -> Tensor:
    """Read, convert (gray or RGB, as the model wants), resize and normalise the images."""
    from lumos.errors import UserError

    batch = []
    for p in paths:
        try:
            image = Image.open(p)
            image.load()
        except (UnidentifiedImageError, OSError) as err:
            raise UserError(f"cannot read image {p}: {err}") from err
        if len(clf.mean) == 1:
            gray = image.convert("L").resize((clf.size, clf.size), Image.Resampling.BILINEAR)
            x = torch.from_numpy(np.asarray(gray, dtype=np.float32) / 255.0)
            batch.append(((x - clf.mean[0]) / clf.std[0]).view(1, 1, clf.size, clf.size))
        else:
            batch.append(transform(clf)(image.convert("RGB")).unsqueeze(0))
    return torch.cat(batch)


def explain(clf: Classifier, x: Tensor, names: Sequence[str], methods: Sequence[Method],
            out: Path, target: int | None, options: dict[str, dict[str, Any]],
            quiet: bool, concepts: dict[str, Any] | None = None) -> tuple[Path, list[str]]:
    """Explain ``x`` with each method; write PNGs and ``out/explain.html``; with
    ``concepts`` (``layer``, ``method``, ``top``, ``store``: see
    :func:`lumos.experiments.glocal_page.concept_sections`) also each image's most relevant
    concepts of the layer.

    Returns the page's path and one summary line per image.
    """
    pred, score = predict(clf.model, x)
    tgt = pred if target is None else torch.full_like(pred, target)
    results = explain_all(clf.model, x, tgt, methods, clf.domain, options,
                          batch_size=4, progress=Progress(quiet))
    lines = []
    for i, name in enumerate(names):
        picture = to_image(x[i], mean=clf.mean, std=clf.std)
        written = []
        for r in results.values():
            if r.explanation is None:
                continue
            stem = f"{_slug(Path(name).stem)}-{_slug(r.method.key)}"
            save_png(heatmap(r.explanation, index=i), out / f"{stem}.png")
            save_png(overlay(picture, r.explanation, index=i), out / f"{stem}-overlay.png")
            written.append(f"{stem}.png")
        lines.append(f"{name}: top-1 {clf.classes[int(pred[i])]} ({float(score[i]):.2f}), "
                     f"explained {clf.classes[int(tgt[i])]} -> {', '.join(written) or 'nothing'}")
    lines += [f"skipped {r.method.title}: {r.error}" for r in results.values() if r.error]
    rows = list(range(len(x)))
    gallery = sections.gallery(
        "explain", f"Model {clf.name}", lambda i: to_image(x[i], mean=clf.mean, std=clf.std),
        rows, list(names),
        [f"pred {clf.classes[int(pred[i])]} ({float(score[i]):.2f}); explained "
         f"{clf.classes[int(tgt[i])]}" for i in rows], [None] * len(rows), results,
        cell=160, photo=len(clf.mean) == 3)
    try:
        axioms: list[Any] = sections.axiom_figures(results, clf.name)
    except ImportError as err:  # the plots need matplotlib, an extra (lumos[plots])
        axioms = [rp.Note(f"The axiom plots are missing: {err}")]
    extra: list[rp.Section] = []
    if concepts is not None:
        from lumos.experiments.glocal_page import concept_sections

        extra, more = concept_sections(clf, x, names, tgt, **concepts)
        lines += more
    page = rp.Report(title="lumos explain", subtitle=f"{len(x)} image(s) under {clf.name}",
                     sections=[rp.Section("Heatmaps", [*sections.skipped(results), gallery]),
                               *extra, rp.Section("Axioms", axioms)])
    return rp.write(page, out / "explain.html"), lines


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
