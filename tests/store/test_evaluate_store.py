"""``lumos evaluate`` over a store, and on any model and dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from storefix import make_checkpoint, make_folder

import lumos
from lumos.cli import main


def test_evaluate_over_a_store_and_on_a_folder(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_folder(tmp_path / "images", per_class=2)
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "store"
    lumos.explain_dataset(str(ckpt), f"folder:{folder}", ["gradient", "lrp:epsilon-plus"], out,
                          progress=False)
    code = main(["evaluate", "--store", str(out), "--metrics", "aopc_morf,sparseness",
                 "--json", str(tmp_path / "m.json"), "--quiet"])
    table = capsys.readouterr().out
    assert code == 0 and "gradient" in table and "lrp:epsilon-plus" in table
    assert "aopc_morf" in (tmp_path / "m.json").read_text()
    code = main(["evaluate", "--store", str(out), "--metrics", "max_sensitivity", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot run on stored maps" in err and len(err.splitlines()) == 1
    code = main(["evaluate", "--model", str(ckpt), "--dataset", f"folder:{folder}", "--n", "4",
                 "--method", "gradient", "--metrics", "sparseness", "--quiet"])
    assert code == 0 and "gradient" in capsys.readouterr().out
    code = main(["evaluate", "--store", str(tmp_path), "--quiet"])
    assert code == 2 and "not a lumos store" in capsys.readouterr().err


def test_localisation_over_a_folder_with_masks_and_its_store(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    from PIL import Image

    from lumos.data.folder import ImageFolder, scan

    folder = make_folder(tmp_path / "images", per_class=2)
    ckpt = make_checkpoint(tmp_path)
    for k, path in enumerate(sorted(folder.glob("*/*.png"))):
        if k % 3:  # the first image of every three has no mask
            where = np.zeros((56, 56), dtype=np.uint8)  # masks may have another size
            where[8:24, 8:24] = 255
            Image.fromarray(where).save(path.with_name(path.stem + ".mask.png"))
    assert len(scan(folder)[1]) == 6  # mask files are not images
    ds = ImageFolder(folder, 28, 1)
    assert ds.has_masks() and not ds.mask(0).any() and int(ds.mask(1).sum()) == 64
    code = main(["evaluate", "--model", str(ckpt), "--dataset", f"folder:{folder}", "--n", "6",
                 "--method", "gradient", "--method", "random", "--metric", "localisation",
                 "--metric", "sparseness", "--json", str(tmp_path / "l.json"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("localisation\nmethod") and "\ncomplexity\n" in out
    assert "pointing_game (↑)" in out and "relevance_mass_accuracy" in out
    import json

    data = json.loads((tmp_path / "l.json").read_text())
    assert data["families"]["pointing_game"] == "localisation"
    assert data["summary"]["gradient"]["pointing_game"]["n"] == 6  # 2 of them without a mask
    store = tmp_path / "store"
    lumos.explain_dataset(str(ckpt), f"folder:{folder}", ["gradient"], store, progress=False)
    code = main(["evaluate", "--store", str(store), "--metric", "relevance_mass_accuracy",
                 "--quiet"])
    assert code == 0 and "relevance_mass_accuracy" in capsys.readouterr().out
    code = main(["evaluate", "--metric", "pointing_game", "--n", "4", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "need masks" in err and len(err.splitlines()) == 1
    code = main(["evaluate", "--metric", "no_such_metric", "--quiet"])
    assert code == 2 and "unknown metric 'no_such_metric'" in capsys.readouterr().err
    assert main(["evaluate", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "faithfulness_correlation" in listing and "localisation_auc" in listing
