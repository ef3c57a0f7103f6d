"""``lumos export virelay`` beyond the plain case: analysis files of the previous spectrum order
(read right by lumos, refused for ViRelAy), inputs ViRelAy would misread, a moved store, and one
clear line for each thing that is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from lumos.analysis.layout import read_analysis
from lumos.cli import main
from lumos.explorer.data import StoreView
from lumos.store import StoreError
from lumos.store.layout import analysis_file
from lumos.store.virelay import export_virelay


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / folder.name
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns("virelay"))
    return target


def _as_lumos_0_1(path: Path) -> None:
    """Rewrite an analysis file as lumos 0.1 wrote it: spectrum ascending, no order attribute."""
    with h5py.File(path, "r+") as f:
        del f.attrs["spectrum_order"]
        for g in f.values():
            spectral = g["embedding/spectral"]
            eigenvalue = spectral.attrs["eigenvalue"][::-1].copy()
            spectral[...] = spectral[()][:, ::-1]
            spectral.attrs["eigenvalue"] = eigenvalue


def test_previous_order_is_read_right_by_lumos_and_refused_for_virelay(
        mnist_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(mnist_store, tmp_path)
    path = analysis_file(folder, "ig")
    now = read_analysis(path)
    payload = StoreView(folder).class_payload("ig", "7")
    _as_lumos_0_1(path)
    before = read_analysis(path)
    for group, c in now.items():
        np.testing.assert_array_equal(before[group]["eigenvalue"], c["eigenvalue"])
        np.testing.assert_array_equal(before[group]["embeddings"]["spectral"],
                                      c["embeddings"]["spectral"])
    assert StoreView(folder).class_payload("ig", "7") == payload
    assert main(["export", "virelay", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "smallest first (written by an older lumos)" in err
    assert f"lumos spray {folder} --method ig" in err


def test_classes_with_other_clusterings_are_refused(mnist_store: Path, tmp_path: Path) -> None:
    folder = _copy(mnist_store, tmp_path)
    with h5py.File(analysis_file(folder, "lrp:epsilon-plus"), "r+") as f:
        del f["1/cluster/kmeans-02"]
    with pytest.raises(StoreError, match="different clusterings, and ViRelAy offers"):
        export_virelay(folder)


def test_dim_inputs_are_copied_as_pixels_virelay_reads_exactly(mnist_store: Path,
                                                               tmp_path: Path) -> None:
    """ViRelAy guesses a float image's range from its extremes: below min + max = 0.5 it takes
    [-1, 1]; such inputs go out as uint8 pixels instead of links."""
    from virelay.model import Project

    folder = _copy(mnist_store, tmp_path)
    with h5py.File(folder / "input.h5", "r+") as f:
        f["data"][0] = f["data"][0] * 0.4
        dim = f["data"][0, 0]
    done = export_virelay(folder, tmp_path / "elsewhere")
    assert done.pixels == "uint8" and done.out == tmp_path / "elsewhere"
    assert done.why.startswith("sample 0 has values in [0, 0.4]")
    project = Project(str(done.projects["ig"]))
    try:
        image = project.get_sample(0).data
        assert image.shape == (28, 28, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image[..., 1], np.rint(dim * 255.0).astype(np.uint8))
    finally:
        project.close()


def test_a_moved_store_keeps_working(mnist_store: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from virelay.model import Project

    folder = _copy(mnist_store, tmp_path / "a")
    export_virelay(folder)
    moved = tmp_path / "b" / "moved"
    shutil.move(str(folder), moved)
    monkeypatch.chdir(tmp_path)
    project = Project(str(moved / "virelay" / "lrp-epsilon-plus.yaml"))
    try:
        with h5py.File(moved / "lrp-epsilon-plus.h5", "r") as f:
            stored = f["attribution"][5, 0]
        np.testing.assert_array_equal(project.get_attribution(5).data.sum(axis=-1), stored)
        assert project.get_sample(5).data.shape == (28, 28, 3)
    finally:
        project.close()


def test_missing_things_are_one_line_each(mnist_store: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "virelay", str(tmp_path)]) == 2
    assert "is not a lumos store" in capsys.readouterr().err
    folder = _copy(mnist_store, tmp_path)
    for path in folder.glob("analysis-*.h5"):
        path.unlink()
    assert main(["export", "virelay", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "has no SpRAy analysis to show; run `lumos spray" in err and err.count("\n") == 1
    assert not (folder / "virelay").exists()
    with pytest.raises(StoreError, match="is the store itself"):
        export_virelay(folder, folder)


def test_a_method_without_analysis_gets_no_project(mnist_store: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(mnist_store, tmp_path)
    export_virelay(folder)
    analysis_file(folder, "ig").unlink()  # the earlier export's ig.yaml must go with it
    assert main(["export", "virelay", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "ig: no analysis file, no project" in out
    assert sorted(p.name for p in (folder / "virelay").glob("*.yaml")) == \
        ["lrp-epsilon-plus.yaml"]
