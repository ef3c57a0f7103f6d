"""Glocal explanations: :func:`lumos.crp.glocal.glocal` and ``lumos explain --concepts LAYER``
(an HTML page with each image's top concepts, their conditional heatmaps and their references
from a store analysed by ``lumos concepts``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))

from storefix import make_checkpoint, make_folder

from helpers import untouched
from lumos.cli import main
from lumos.crp import CRP
from lumos.crp.references import glocal
from lumos.lrp import composites
from lumos.models.checkpoint import load_checkpoint

LAYER = "features.4"


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("glocal")
    folder = make_folder(root / "images", per_class=4)
    checkpoint = make_checkpoint(root)
    store = root / "store"
    assert main(["explain-dataset", "--model", str(checkpoint), "--dataset",
                 f"folder:{folder}", "--method", "lrp:epsilon-plus", "--concepts", LAYER,
                 "--quiet", "--out", str(store)]) == 0
    assert main(["concepts", str(store), "--layer", LAYER, "--top", "4", "--quiet"]) == 0
    return folder, checkpoint, store


def test_glocal_api(analysed: tuple[Path, Path, Path]) -> None:
    _, checkpoint, store = analysed
    model, _ = load_checkpoint(checkpoint)
    model = model.double()
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    crp = CRP(model, composites.EpsilonPlus())
    with untouched(model):
        g = glocal(crp, x, [1, 2], LAYER, top=3, store=store, references=2)
    rel = crp.concept_relevance(x, [1, 2], layers=LAYER)[LAYER]
    assert g.concepts.shape == g.share.shape == (2, 3) and g.heatmaps.shape == (2, 3, 1, 28, 28)
    for i in range(2):
        best = rel[i].topk(3)
        assert g.concepts[i].tolist() == best.indices.tolist()
        assert torch.allclose(g.share[i], best.values / rel[i].abs().sum())
        one = crp.attribute(x[i:i + 1], [1, 2][i], layer=LAYER, concepts=best.indices.tolist())
        assert torch.allclose(g.heatmaps[i], one[0], rtol=0, atol=1e-12)
    assert set(g.references) == set(g.concepts.flatten().tolist())
    for refs in g.references.values():
        assert len(refs) == 2
        top, left, bottom, right = refs[0].box
        assert refs[0].image.shape == (1, bottom - top, right - left)
    with pytest.raises(FileNotFoundError, match="lumos concepts"):
        glocal(crp, x, 1, LAYER, store=store.parent)
    with pytest.raises(KeyError, match=r"not 'features\.0'"):
        glocal(crp, x, 1, "features.0", store=store)


def test_explain_concepts_page(analysed: tuple[Path, Path, Path], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    folder, checkpoint, store = analysed
    images = sorted(folder.glob("*/*.png"))[:2]
    out = tmp_path / "out"
    assert main(["explain", *map(str, images), "--model", str(checkpoint), "--method",
                 "lrp:epsilon-plus", "--concepts", LAYER, "--concept-top", "3",
                 "--references", str(store), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count(f"concepts of {LAYER}") == 2
    page = (out / "explain.html").read_text()
    assert page.count(f"top 3 concepts of {LAYER}") == 2
    # per image 3 concepts x (1 heatmap + 4 references)
    assert len(re.findall(r'data-gallery="concepts-0" data-kind="input"', page)) == 12
    assert len(re.findall(r'data-gallery="concepts-1" data-kind="lrp"', page)) == 3
    for args, message in ((["--references", str(store)], "--references needs --concepts"),
                          (["--concepts", LAYER, "--references", str(tmp_path)],
                           "not a lumos store")):
        assert main(["explain", str(images[0]), "--model", str(checkpoint), *args, "--out",
                     str(out), "--quiet"]) != 0
        assert message in capsys.readouterr().err
