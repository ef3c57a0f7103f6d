"""Must show 1 and 2: SpRAy finds a planted Clever Hans mark.

``test_imagefolder_with_its_own_mark``: this test draws its own mark (a 3x3 dot in the top-right
corner, on digit 3, as RGB PNGs) into an ImageFolder it writes itself, trains the mnist-5k CNN
briefly on digits with that mark, and runs the demo's pipeline on ``folder:DIR`` (store ->
SpRAy -> adjusted Rand index -> static page). The full demo (digit 8, 4x4 mark, LRP and IG) runs
as ``lumos demo --clever-hans``; its numbers are in the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.test_concept_view import concept_self_test
from lumos.experiments.clever_hans import (
    CleverHansSettings,
    Mark,
    mark_localisation,
    marked_training_set,
    save_model,
    spray_folder,
    train,
)

DIGIT = 3
DOT = Mark(top=2, left=23, size=3)


def _write_rgb_folder(root: Path, seed: int) -> np.ndarray:
    """Held-out digit-3 images (half with the dot) and a few others, as RGB PNGs."""
    from lumos.data.samples import mnist5k

    x, y = mnist5k("test")
    rng = np.random.default_rng(seed)
    marks = []
    for d in range(10):
        images = x[y == d] if d == DIGIT else x[y == d][:5]
        for n, img in enumerate(images):
            marked = d == DIGIT and bool(rng.random() < 0.5)
            pixels = (DOT.apply(img[None])[0] if marked else img)[0].numpy()
            gray = np.round(pixels * 255).astype(np.uint8)
            path = root / f"digit-{d}" / f"{n:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.stack([gray] * 3, axis=-1), mode="RGB").save(path)
            if marked:
                where = DOT.mask(28, 28).numpy().astype(np.uint8) * 255
                Image.fromarray(where, mode="L").save(path.with_name(f"{n:03d}.mask.png"))
            if d == DIGIT:
                marks.append(marked)
    return np.array(marks)


@pytest.mark.slow
def test_imagefolder_with_its_own_mark(tmp_path: Path) -> None:
    settings = CleverHansSettings(digit=DIGIT, mark=DOT, fraction=0.5, epochs=3)
    x, y, marked = marked_training_set(settings, seed=0)
    assert int(marked.sum()) == 200 and not marked[y != DIGIT].any()
    keep = torch.arange(len(y)) < 2000  # class-balanced prefix: a short run, as in --fast
    model = train(x[keep], y[keep], settings, seed=0, progress=False)
    checkpoint = save_model(model, tmp_path / "model.safetensors", settings)
    truth = _write_rgb_folder(tmp_path / "folder", seed=1)
    result = spray_folder(checkpoint, tmp_path / "folder", tmp_path / "store", f"digit-{DIGIT}",
                          truth, ("lrp:epsilon-plus",), ig={}, quiet=True,
                          concept_layer="features.4", concept_top=16)
    assert result["samples"] == 100 and result["marked"] == int(truth.sum())
    lrp = result["methods"]["lrp:epsilon-plus"]
    print(f"folder:DIR with the test's own mark: LRP eigengap k = {lrp['k']}, ARI "
          f"{lrp['ari']:.3f}, cluster sizes {lrp['cluster_sizes']}")
    assert lrp["ari"] >= 0.9, lrp
    hans = lrp["marked_cluster"]
    assert lrp["marked_share"][hans] >= 0.95
    assert Path(result["page"]).is_file()
    assert (tmp_path / "store" / "analysis-lrp-epsilon-plus.h5").is_file()
    # the marks are the masks: LRP puts far more than the mark's 9 / 784 of relevance there
    local = mark_localisation(tmp_path / "store", quiet=True)
    assert local["marked_digits"] == int(truth.sum()) and local["most_on_mark"] == \
        "lrp:epsilon-plus"
    cells = local["metrics"]["lrp:epsilon-plus"]
    print(f"LRP on the mark: mass {cells['relevance_mass_accuracy']['mean']:.3f}, pointing game "
          f"{cells['pointing_game']['mean']:.3f}")
    assert cells["relevance_mass_accuracy"]["mean"] > 0.1
    # by concept: the last convolution's concept with the largest mean relevance on the
    # marked digits has more marked digits among its top 16 references than the store (a
    # third). The demo's longer training and larger mark give the concepts issue's number
    # (at least 80%; docs/benchmarks.md); this short run gives about half.
    concept = result["concept"]
    print(f"concept {concept['concept']} of features.4: {concept['marked_in_top']:.0%} of its "
          f"top 16 references marked; {concept}")
    assert len(concept["top"]) == 16 and concept["marked_in_top"] >= 0.45, concept
    check_concept_view(tmp_path / "store", concept, tmp_path)


def check_concept_view(store: Path, concept: dict[str, Any], tmp: Path) -> None:
    """The explorer's concept view, served, in headless Chromium: it shows the concept with
    its 16 references by relevance (the marked ones), and the first one's top concepts."""
    from lumos.crp.files import concepts_file

    assert concepts_file(store, concept["method"]).is_file()
    result = concept_self_test(store, concept["concept"], tmp)
    assert result["concept"] == concept["concept"] and result["rows"] == 32
    assert result["relmax"] == concept["top"]  # the marked ones (asserted above)
    kinds = [i["kind"] for i in result["images"]]
    assert kinds.count("relmax:input") == kinds.count("relmax:heatmap") == 16
    assert kinds.count("actmax:input") == 16 and "sample:heatmap" in kinds
    assert [i for i in result["images"] if i["width"] <= 0] == []
    assert result["sample"]["top"][0] in range(32) and result["sampleRows"] >= 1


@pytest.mark.slow
def test_mark_and_training_set() -> None:
    s = CleverHansSettings(fraction=0.25)
    x, y, marked = marked_training_set(s, seed=3)
    assert int(marked.sum()) == 100 and bool((y[marked] == s.digit).all())
    corner = x[:, 0, s.mark.top:s.mark.top + s.mark.size, s.mark.left:s.mark.left + s.mark.size]
    assert torch.all(corner[marked] == 1.0)
    assert not torch.all(corner[~marked].flatten(1) == 1.0, dim=1).any()
