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
