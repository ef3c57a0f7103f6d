"""explain_dataset in one process: the stored maps are the attributors' own, in ViRelAy's layout."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from storefix import make_checkpoint, make_folder

import lumos
from lumos.errors import UserError
from lumos.lrp import composites
from lumos.store import StoreError, open_store


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("small")
    folder = make_folder(root / "images", per_class=9)
    ckpt = make_checkpoint(root)
    out = root / "store"
    lumos.explain_dataset(str(ckpt), f"folder:{folder}", ["ig", "lrp:epsilon-plus"], out,
                          shard_size=10, batch_size=4, ig={"n_steps": 16}, progress=False)
    return folder, ckpt, out


def test_layout_follows_virelay_spec(small: tuple[Path, Path, Path]) -> None:
    _, _, out = small
    assert sorted(p.name for p in out.iterdir()) == [
        "ig.h5", "input.h5", "lrp-epsilon-plus.h5", "manifest.json"]  # shards/ removed
    with h5py.File(out / "input.h5", "r") as f:
        assert f["data"].shape == (27, 1, 28, 28) and f["data"].dtype == np.float32
        assert f["label"].dtype == np.uint32 and list(f["label"][()]) == [0] * 9 + [1] * 9 + [2] * 9
    for name in ("ig.h5", "lrp-epsilon-plus.h5"):
        with h5py.File(out / name, "r") as f:
            assert f["attribution"].shape == (27, 1, 28, 28)
            assert f["attribution"].dtype == np.float32
            assert f["prediction"].shape == (27, 10) and f["prediction"].dtype == np.float32
            assert list(f["index"][()]) == list(range(27))
            assert f["delta"].shape == (27,) and f["target"].dtype == np.int64
    with open_store(out) as store:
        assert store.methods == ["ig", "lrp:epsilon-plus"]
        assert store.classes == ["a", "b", "c"] and len(store) == 27
        m = store.manifest
        assert m["shards_total"] == 3 and [s["run"] for s in m["shards"]] == [1, 1, 1]
        assert set(m["methods"]["ig"]) >= {"file", "seconds", "options"}
        assert store.h5("ig")["attribution"][3].shape == (1, 28, 28)


@pytest.mark.filterwarnings("ignore:.*did not reach the completeness tolerance")
def test_stored_maps_equal_the_attributors(small: tuple[Path, Path, Path]) -> None:
    _, ckpt, out = small
    from lumos.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(ckpt)
    with open_store(out) as store:
        x = torch.from_numpy(store.arrays(None)["data"])
        lrp, ig = store.arrays("lrp:epsilon-plus"), store.arrays("ig")
    t = model(x).argmax(1)
    assert torch.equal(torch.from_numpy(lrp["target"]), t)
    np.testing.assert_allclose(lrp["prediction"], model(x).detach().numpy(), atol=1e-6)
    lrp_api = lumos.LRP(model, composite=composites.EpsilonPlus())
    ig_api = lumos.IntegratedGradients(model)
    for a in range(0, 27, 10):  # shards of 10, batches of 4 from each shard's start
        for b in range(a, min(a + 10, 27), 4):
            rows = slice(b, min(b + 4, a + 10))
            want = lrp_api.explain(x[rows], target=t[rows])
            np.testing.assert_allclose(lrp["attribution"][rows], want.attribution.numpy(),
                                       rtol=0, atol=1e-6)
            np.testing.assert_allclose(lrp["delta"][rows], want.delta.numpy(), atol=1e-5)
            exp = ig_api.explain(x[rows], target=t[rows], baselines=torch.zeros(1, 1, 1, 1),
                                 n_steps=16)
            np.testing.assert_allclose(ig["attribution"][rows], exp.attribution.numpy(),
                                       rtol=0, atol=1e-6)
            np.testing.assert_allclose(ig["delta"][rows], exp.delta.numpy(), atol=1e-6)


def test_rerun_is_a_no_op_and_other_settings_refuse(small: tuple[Path, Path, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder, ckpt, out = small
    before = (out / "ig.h5").stat().st_mtime_ns
    store = lumos.explain_dataset(str(ckpt), f"folder:{folder}", ["ig", "lrp:epsilon-plus"],
                                  out, shard_size=10, batch_size=4, ig={"n_steps": 16},
                                  progress=False)
    assert (out / "ig.h5").stat().st_mtime_ns == before and store.manifest["complete"]
    from lumos.cli import main

    code = main(["explain-dataset", "--model", str(ckpt), "--dataset", f"folder:{folder}",
                 "--method", "ig", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "other settings" in err and "--overwrite" in err


def test_overwrite_float16_and_label_target(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", per_class=3)
    ckpt = make_checkpoint(tmp_path)
    out = tmp_path / "store"
    lumos.explain_dataset(str(ckpt), f"folder:{folder}", ["gradient"], out, progress=False)
    store = lumos.explain_dataset(str(ckpt), f"folder:{folder}", ["lrp:epsilon-plus"], out,
                                  dtype="float16", target="label", overwrite=True,
                                  progress=False)
    assert store.methods == ["lrp:epsilon-plus"] and not (out / "gradient.h5").exists()
    a = store.arrays("lrp:epsilon-plus")
    assert a["attribution"].dtype == np.float16
    assert list(a["target"]) == list(a["label"]) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_bad_arguments_give_one_clear_error(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "images", per_class=1)
    ckpt = make_checkpoint(tmp_path)
    cases = [({"methods": ["nope"]}, "unknown method"),
             ({"target": "7x"}, "--target must be"),
             ({"target": 12}, "out of range"),
             ({"dtype": "int8"}, "--dtype"),
             ({"shard_size": 0}, "--shard-size"),
             ({"dataset": "cifar"}, "is not one of"),
             ({"dataset": "mnist-5k", "model": "efficientnet-lite0"}, "1-channel")]
    for change, words in cases:
        kwargs = {"model": str(ckpt), "dataset": f"folder:{folder}", "methods": ["gradient"],
                  "out": tmp_path / "s", "progress": False, **change}
        with pytest.raises(UserError, match=words):
            lumos.explain_dataset(**kwargs)  # type: ignore[arg-type]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        lumos.explain_dataset(str(ckpt), f"folder:{folder}", ["gradient"], tmp_path / "other",
                              progress=False)
    with pytest.raises(StoreError, match="not a lumos store"):
        open_store(tmp_path / "other")


def test_a_users_module_is_used_as_a_copy_and_left_untouched(tmp_path: Path) -> None:
    from helpers import small_cnn, untouched

    folder = make_folder(tmp_path / "images", per_class=2)
    model = small_cnn(size=28).float()
    model.train()  # whatever state the user left it in stays
    with untouched(model):
        store = lumos.explain_dataset(model, f"folder:{folder}", ["lrp:epsilon-plus"],
                                      tmp_path / "s", classes=[str(k) for k in range(10)],
                                      progress=False)
    a = store.arrays("lrp:epsilon-plus")
    x = torch.from_numpy(store.arrays(None)["data"])
    want = lumos.LRP(model.eval(), composite=composites.EpsilonPlus()).attribute(
        x, target=torch.from_numpy(a["target"]))
    np.testing.assert_allclose(a["attribution"], want.numpy(), atol=1e-6)
    assert store.manifest["model"]["spec"] == "Sequential"
    from lumos.store.evaluate import evaluate_store

    with pytest.raises(UserError, match=r"written from a Python nn\.Module"):
        evaluate_store(tmp_path / "s", progress=False)
    result = evaluate_store(tmp_path / "s", ["sparseness"], model=model, progress=False)
    assert "lrp:epsilon-plus" in result.table()


def test_overlapped_and_in_turn_io_store_the_same(small: tuple[Path, Path, Path],
                                                  tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from lumos.store import pipeline

    folder, ckpt, out = small
    import os

    here = pipeline.overlap_io(torch.device("cpu"), os.cpu_count() or 1)
    monkeypatch.setattr(pipeline, "overlap_io", lambda device, cpus: not here)  # the other way
    lumos.explain_dataset(str(ckpt), f"folder:{folder}", ["ig", "lrp:epsilon-plus"],
                          tmp_path / "store", shard_size=10, batch_size=4, ig={"n_steps": 16},
                          progress=False)
    for name in ("input.h5", "ig.h5", "lrp-epsilon-plus.h5"):
        with h5py.File(out / name, "r") as a, h5py.File(tmp_path / "store" / name, "r") as b:
            assert sorted(a) == sorted(b)
            for key in a:
                np.testing.assert_array_equal(a[key][()], b[key][()], err_msg=f"{name}:{key}")
