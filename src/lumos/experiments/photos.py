"""Natural photos under an ImageNet classifier: load, preprocess, explain top-1, report.

The photos are the ones scikit-image ships (``skimage.data.chelsea()``, ...), so the demo needs
no download. Preprocessing is the usual ImageNet evaluation one (:mod:`lumos.data.transforms`):
shorter side to 256 pixels, centre crop 224 x 224, normalise with the model's mean and std.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from lumos.experiments import sections
from lumos.experiments.methods import MethodUnavailable, parse
from lumos.experiments.study import Progress, explain_all, predict
from lumos.models.classifier import Classifier
from lumos.viz import report as rp
from lumos.viz.image import to_image


def pretrained(name: str = "efficientnet-lite0") -> Classifier:
    """A pretrained model from :func:`lumos.models.zoo.pretrained` with its classes and norm."""
    try:
        from lumos.models import zoo
    except ImportError as err:
        raise MethodUnavailable(f"lumos.models.zoo is not available ({err})") from err
    loaded = zoo.pretrained(name)
    return Classifier(loaded.model.eval(), list(loaded.classes), list(loaded.mean),
                      list(loaded.std), name)


def load_photos(names: list[str], clf: Classifier) -> Tensor:
    """scikit-image's sample photos by name, preprocessed for ``clf``: ``(N, 3, size, size)``."""
    from lumos.data import photos

    tf = transform(clf)
    return torch.stack([tf(image) for image in photos(names).values()])


def transform(clf: Classifier) -> Any:
    """The evaluation transform of ``clf``: shorter side to ``size * 8 / 7``, centre crop, norm."""
    from lumos.data.transforms import eval_transform

    return eval_transform(clf.size, mean=clf.mean, std=clf.std)


def photo_part(settings: Any, progress: Progress, summary: dict[str, str],
               device: str | torch.device = "cpu") -> list[rp.Section]:
    """Explain the photos of ``settings.photos`` with ``settings.photo_methods`` on ``device``."""
    progress.say("loading EfficientNet-Lite0 (ImageNet weights)")
    clf = pretrained("efficientnet-lite0")
    clf.model.to(device)
    x = load_photos(list(settings.photos), clf).to(device)
    pred, score = predict(clf.model, x)
    summary["photo model"] = (f"{clf.name}, ImageNet weights, "
                              f"{sum(p.numel() for p in clf.model.parameters()):,} parameters")
    summary["photos"] = ", ".join(f"{n} → {clf.classes[int(p)]} ({float(s):.2f})"
                                  for n, p, s in zip(settings.photos, pred, score, strict=True))
    methods = [parse(k) for k in settings.photo_methods]
    options = {"ig": {"tolerance": settings.photo_ig_tolerance,
                      "max_steps": settings.photo_ig_max_steps}}
    start = time.perf_counter()
    results = explain_all(clf.model, x, pred, methods, clf.domain, options, batch_size=2,
                          progress=progress)
    progress.say(f"photos explained in {time.perf_counter() - start:.1f} s")
    rows = list(range(len(x)))
    gallery = sections.gallery(
        "photos", "Top-1 class of each photo", lambda i: to_image(x[i], mean=clf.mean,
                                                                  std=clf.std),
        rows, list(settings.photos),
        [f"pred {clf.classes[int(pred[i])]} ({float(score[i]):.2f})" for i in rows],
        [None] * len(rows), results, cell=160, photo=True)
    return [rp.Section("Photos: heatmaps (EfficientNet-Lite0)",
                       [*sections.skipped(results), gallery]),
            rp.Section("Photos: axioms and runtime",
                       [*sections.axiom_figures(results, "photos"),
                        sections.runtime_figure(results, len(x), "photos")])]
