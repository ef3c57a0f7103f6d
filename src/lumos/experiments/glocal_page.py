"""The concepts section of ``lumos explain --concepts LAYER``: per image, its most relevant
concepts of the layer with their conditional heatmaps and, given ``--references STORE``, each
concept's reference samples from the store (cropped to where the concept is relevant)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image
from torch import Tensor

from lumos.experiments.photos import Classifier
from lumos.viz import report as rp
from lumos.viz.image import heatmap, to_image


def concept_sections(clf: Classifier, x: Tensor, names: Sequence[str], target: Tensor,
                     layer: str, method: str, top: int = 6,
                     store: str | os.PathLike[str] | None = None, references: int = 6,
                     ) -> tuple[list[rp.Section], list[str]]:
    """One gallery per image (rows: its ``top`` concepts of ``layer``; columns: the
    conditional heatmap, then the references) and one summary line per image."""
    from lumos.crp.attribution import CRP
    from lumos.crp.references import glocal
    from lumos.experiments.methods import composite

    low, high = clf.domain.low.to(x), clf.domain.high.to(x)
    crp = CRP(clf.model, composite(method, low, high))
    try:
        g = glocal(crp, x, target, layer, top=top, store=store,
                   method=method if store is not None else None, references=references)
    except (FileNotFoundError, KeyError) as err:
        from lumos.errors import UserError

        raise UserError(str(err.args[0] if err.args else err)) from err
    blocks: list[rp.Block] = []
    lines = []
    shown = max((len(v) for v in g.references.values()), default=0)
    columns = ["conditional heatmap", *(f"reference {j + 1}" for j in range(shown))]
    kinds: list[rp.Kind] = ["lrp"]
    kinds += ["input"] * shown
    for i, name in enumerate(names):
        rows = []
        for t in range(g.concepts.shape[1]):
            c = int(g.concepts[i, t])
            images: list[Image.Image | None] = [heatmap(g.heatmaps[i, t:t + 1])]
            for ref in g.references.get(c, []):
                images.append(_reference_image(clf, ref.image))
            images += [None] * (len(columns) - len(images))
            rows.append(rp.Row(label=f"concept {c}", images=images,
                               caption=f"{float(g.share[i, t]):+.0%} of the layer's "
                                       f"|relevance| ({float(g.relevance[i, t]):+.3g})"))
        blocks.append(rp.Figure(to_image(x[i], mean=clf.mean, std=clf.std).resize((112, 112)),
                                caption=f"{name}: explained class "
                                        f"{clf.classes[int(target[i])]}", alt=name))
        blocks.append(rp.Gallery(name=f"concepts-{i}", columns=columns, kinds=kinds, rows=rows,
                                 title=f"{name}: top {len(rows)} concepts of {layer}",
                                 cell=112, photo=len(clf.mean) == 3))
        lines.append(f"{name}: concepts of {layer} " + ", ".join(
            f"{int(c)} ({float(s):+.0%})" for c, s in zip(g.concepts[i], g.share[i],
                                                         strict=True)))
    note = (f"Concept relevance propagation ({method}): each row is one channel of {layer}, "
            "ranked by its relevance for the explained class; its heatmap is the part of the "
            "LRP heatmap that flows through that channel.")
    if store is None:
        note += " Pass --references STORE (a store analysed with `lumos concepts`) to see " \
                "each concept's reference samples."
    return [rp.Section(f"Concepts of {layer}", [rp.Text(note), *blocks])], lines


def _reference_image(clf: Classifier, image: np.ndarray) -> Image.Image:
    picture = to_image(image, mean=clf.mean, std=clf.std)
    return picture.resize((max(1, picture.width * 112 // max(picture.height, 1)), 112),
                          Image.Resampling.NEAREST)
