"""``folder:DIR`` datasets: channels follow the model, bad folders give one clear error each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from storefix import make_checkpoint, make_folder

import lumos
from lumos.cli import main
from lumos.data import DatasetError
from lumos.data.folder import RESIZED, UNREADABLE, ImageFolder, scan, split_samples


def test_grayscale_folder_stays_one_channel_rgb_gets_three(tmp_path: Path) -> None:
    gray = make_folder(tmp_path / "gray", per_class=2)
    rgb = make_folder(tmp_path / "rgb", per_class=2, mode="RGB", size=40)
    g = ImageFolder(gray, 28)
    assert g.channels == 1 and g[0][0].shape == (1, 28, 28) and g.classes == ["a", "b", "c"]
    c = ImageFolder(rgb, 32, mean=[0.5] * 3, std=[0.25] * 3)
    x, label, status = c[5]
    assert c.channels == 3 and x.shape == (3, 32, 32) and label == 2 and status == RESIZED
    assert float(x.min()) >= -2.0 - 1e-6 and float(x.max()) <= 2.0 + 1e-6


def test_splits_from_subfolders_or_a_strided_cut(tmp_path: Path) -> None:
    plain = split_samples(make_folder(tmp_path / "plain", per_class=10))
    assert len(plain["all"][1]) == 30 and len(plain["test"][1]) == 3
    make_folder(tmp_path / "split" / "train", per_class=4)
    make_folder(tmp_path / "split" / "val", per_class=1)
    parts = split_samples(tmp_path / "split")
    assert len(parts["train"][1]) == 12 and len(parts["test"][1]) == 3


def test_empty_class_folder_and_no_classes_are_errors(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "f", per_class=2)
    (root / "d-empty").mkdir()
    (root / "d-empty" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match=r"class folder 'd-empty' holds no images"):
        scan(root)
    with pytest.raises(DatasetError, match="no class folders"):
        scan(root / "a")


def _explain(folder: Path, ckpt: Path, out: Path, capsys: pytest.CaptureFixture[str],
             ) -> tuple[int, str]:
    code = main(["explain-dataset", "--model", str(ckpt), "--dataset", f"folder:{folder}",
                 "--method", "gradient", "--out", str(out), "--shard-size", "4",
                 "--workers", "0", "--quiet"])
    return code, capsys.readouterr().err


def test_bad_folders_one_line_each_nothing_lost(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_folder(tmp_path / "f", per_class=4)
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "store"
    broken = folder / "c" / "002.png"
    good = broken.read_bytes()
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    assert ImageFolder(folder, 28)[10][2] == UNREADABLE
    code, err = _explain(folder, ckpt, out, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"cannot read image {broken} (dataset position 10)" in err
    kept = sorted(p.name for p in (out / "shards").glob("*.h5"))
    assert kept == ["0000000000-0000000004.h5", "0000000004-0000000008.h5"]
    broken.write_bytes(good)  # fixed in place: the rerun continues where it stopped
    Image.new("L", (50, 31), 200).save(folder / "c" / "003.png")  # another size: resized
    code, _ = _explain(folder, ckpt, out, capsys)
    assert code == 0
    store = lumos.open_store(out)
    assert [s["run"] for s in store.manifest["shards"]] == [1, 1, 2]
    assert store.manifest["images_resized"] == 1
    assert store.arrays(None)["data"].shape == (12, 1, 28, 28)
    (folder / "e").mkdir()
    code, err = _explain(folder, ckpt, tmp_path / "other", capsys)
    assert code == 2 and "class folder 'e' holds no images" in err
    assert len(err.strip().splitlines()) == 1
    assert np.isfinite(store.arrays("gradient")["attribution"]).all()


@pytest.mark.slow
def test_train_on_a_grayscale_folder_then_explain_it(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    folder = make_folder(tmp_path / "f", per_class=10)
    code = main(["train", "--dataset", f"folder:{folder}", "--out", str(tmp_path / "m"),
                 "--epochs", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    ckpt = tmp_path / "m" / "model.safetensors"
    from lumos.models.checkpoint import read_meta

    meta = read_meta(ckpt)
    assert meta["classes"] == ["a", "b", "c"] and meta["input_size"] == 28
    assert meta["normalization"] == {"mean": [0.0], "std": [1.0]}
    store = lumos.explain_dataset(str(ckpt), f"folder:{folder}", ["gradient"],
                                  tmp_path / "s", progress=False)
    assert store.arrays(None)["data"].shape == (30, 1, 28, 28)
