"""Concepts in the store: what ``explain-dataset --concepts`` stores equals the API, and the
references ``lumos concepts`` ranks from it equal zennit-crp's ``FeatureVisualization``
(Must show 4; the whole 5,000 digits in ``bench/crp_relmax.py``; torchrun and SIGKILL/resume
in ``tests/store/test_torchrun.py`` and ``tests/store/test_resume.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import zcrp

from lumos.cli import main
from lumos.crp import CRP
from lumos.crp.analysis import analyse, read_analysis
from lumos.lrp import composites
from lumos.store import open_store

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
from storefix import make_checkpoint, make_folder


def same_up_to_ties(mine: np.ndarray, theirs: np.ndarray, scores: np.ndarray,
                    tolerance: float = 1e-5) -> bool:
    """Whether two best-first top-k lists of one concept hold the same rows, where rows whose
    scores lie within ``tolerance`` (relative to the largest |score|) of the k-th may be
    swapped for others (equal scores can be ordered either way)."""
    scale = float(np.abs(scores).max()) or 1.0
    kth = float(scores[-1])
    near = {int(r) for r, v in zip(mine, scores, strict=True) if abs(v - kth) <= tolerance * scale}
    firm = {int(r) for r in mine} - near
    theirs_set = {int(r) for r in theirs}
    return firm <= theirs_set and len(theirs_set - firm) <= len(near)


def test_stored_concepts_equal_the_api(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", per_class=6)  # 18 digits-like images
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "store"
    assert main(["explain-dataset", "--model", str(ckpt), "--dataset", f"folder:{folder}",
                 "--method", "lrp:epsilon-plus", "--concepts", "features.4",
                 "--concepts", "classifier.2", "--batch-size", "18", "--quiet",
                 "--out", str(out)]) == 0
    with open_store(out) as store:
        assert store.concept_layers("lrp:epsilon-plus") == {"features.4": 32,
                                                            "classifier.2": 128}
        x = torch.from_numpy(store.arrays()["data"])
        method = store.arrays("lrp:epsilon-plus")
        stats = {layer: store.concepts("lrp:epsilon-plus", layer)
                 for layer in ("features.4", "classifier.2")}
    from lumos.models.checkpoint import load_checkpoint
    from lumos.models.cnn import MnistCNN

    model, _ = load_checkpoint(ckpt, MnistCNN())
    crp = CRP(model.eval(), composites.EpsilonPlus())
    target = torch.from_numpy(method["target"]).long()
    want = crp.concept_relevance(x, target, layers=["features.4", "classifier.2"])
    full = crp.statistics(x, target, ["features.4"])["features.4"]
    for layer, values in want.items():
        np.testing.assert_allclose(stats[layer]["relevance"], values.numpy(), rtol=1e-5,
                                   atol=1e-6)
    for key in ("relevance_max", "activation", "activation_max"):
        np.testing.assert_allclose(stats["features.4"][key], full[key].numpy(), rtol=1e-5,
                                   atol=1e-6)
    # the LRP heatmap of the same pass is the plain LRP heatmap
    lrp = __import__("lumos").LRP(model.eval(), composites.EpsilonPlus())
    np.testing.assert_allclose(method["attribution"], lrp.attribute(x, target).numpy(),
                               rtol=1e-5, atol=1e-6)
    # lumos concepts: references are the highest scores; the file reads back
    a = analyse(out, "features.4", top=4, sample_heatmaps=2, progress=False)
    scores = stats["features.4"]["relevance"] / (
        np.abs(stats["features.4"]["relevance"]).sum(1, keepdims=True) + 1e-10)
    for c in range(32):
        best = np.sort(scores[:, c])[::-1][:4]
        np.testing.assert_allclose(a.references["relevance"].score[c], best, rtol=1e-6)
    back = read_analysis(out, "features.4")
    np.testing.assert_array_equal(back.references["relevance"].index,
                                  a.references["relevance"].index)
    assert back.references["relevance"].heatmap is not None
    assert back.references["relevance"].heatmap.shape == (32, 4, 28, 28)
    assert back.sample_heatmap is not None and back.sample_heatmap.shape == (18, 2, 28, 28)
    boxes = back.references["activation"].box
    assert (boxes[..., 2] > boxes[..., 0]).all() and (boxes[..., 3] > boxes[..., 1]).all()


@pytest.mark.slow
@pytest.mark.skipif(zcrp.folder() is None, reason="zennit-crp not installed (make zennit-crp)")
def test_relmax_equals_zennit_crp_feature_visualization(tmp_path: Path) -> None:
    """The top-8 references of every concept of the last convolution, on 500 held-out
    digits of mnist-5k under the trained digit CNN, equal zennit-crp's."""
    out = tmp_path / "store"
    assert main(["explain-dataset", "--model", "mnist5k-cnn", "--dataset", "mnist-5k",
                 "--limit", "500", "--target", "label", "--method", "lrp:epsilon-plus",
                 "--concepts", "features.4", "--quiet", "--out", str(out)]) == 0
    mine = analyse(out, "features.4", heatmaps=False, progress=False)
    with open_store(out) as store:
        data = store.arrays()
    from lumos.models.zoo import mnist5k_cnn

    theirs = zcrp.run(mnist5k_cnn(), [{
        "kind": "fv", "x": torch.from_numpy(data["data"]),
        "y": torch.from_numpy(data["label"].astype(np.int64)), "layers": ["features.4"],
        "composite": "EpsilonPlus", "canonizer": "sequential"}])[0]["features.4"]
    for mode, key in (("relevance", "rel"), ("activation", "act")):
        refs = mine.references[mode]
        want = theirs[f"{key}_index"].numpy()[:8].T  # (channels, 8)
        for c in range(mine.channels):
            assert same_up_to_ties(refs.index[c], want[c], refs.score[c]), (mode, c)
