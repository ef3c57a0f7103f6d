"""``lumos spray`` on a store: the analysis files, the static page, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from lumos.cli import main


@pytest.mark.slow
def test_spray_command_writes_analyses_and_a_page(store: tuple[Path, np.ndarray],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    directory, _ = store
    page = directory / "page.html"
    assert main(["spray", str(directory), "--method", "ig", "--method", "lrp", "--label", "5",
                 "--clusters", "2,3", "--html", str(page), "--quiet"]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(directory / "analysis-ig.h5"), str(directory / "analysis-lrp.h5"),
                   str(page)]
    assert page.stat().st_size > 10_000


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "nope"], "no attributions for method 'nope'"),
    (["--method", "ig", "--label", "4"], "class 4 has no heatmaps"),
    (["--method", "ig", "--clusters", "1,x"], "--clusters must be integers"),
    (["--method", "ig", "--clusters", "1"], "--clusters needs counts of at least 2"),
])
def test_spray_command_errors_are_one_line(store: tuple[Path, np.ndarray], args: list[str],
                                           message: str, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    directory, _ = store
    assert main(["spray", str(directory), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--size", "0"], "--size must be a positive integer or 'full'"),
    (["--eigen", "0"], "--eigen must be positive"),
    (["--corelay", "--normalize", "sum"], "sum to 0 (within 1e-6"),
])
def test_spray_settings_errors_are_one_line(store: tuple[Path, np.ndarray], args: list[str],
                                            message: str, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    directory, _ = store
    with h5py.File(directory / "ig.h5", "r+") as f:  # one map whose relevance cancels
        f["attribution"][0] = f["attribution"][0] - f["attribution"][0].mean()
    assert main(["spray", str(directory), "--method", "ig", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_corelay_option_sets_corelays_settings_and_options_override(
        store: tuple[Path, np.ndarray], capsys: pytest.CaptureFixture[str]) -> None:
    import json

    directory, _ = store
    assert main(["spray", str(directory), "--method", "lrp", "--corelay", "--eigen", "6",
                 "--affinity", "self-tuning", "--label", "5", "--clusters", "2", "--no-umap",
                 "--quiet"]) == 0
    with h5py.File(directory / "analysis-lrp.h5", "r") as f:
        settings = json.loads(f.attrs["settings"])
        assert f["5/embedding/spectral"].shape == (60, 6) and "umap" not in f["5/embedding"]
        # k-means on all eigenvectors: every column clustered, the rows of unit length
        assert f["5/cluster/kmeans-02"].attrs["index"].tolist() == list(range(6))
        np.testing.assert_allclose(np.linalg.norm(f["5/embedding/spectral"][()], axis=1), 1,
                                   rtol=1e-5)
    assert settings | {"seed": 0} == {
        "size": None, "normalize": "sum", "neighbors": 10, "affinity": "self-tuning",
        "n_eigen": 6, "select": "magnitude", "kmeans_on": "all", "cluster_counts": [2],
        "max_clusters": 10, "approximate": None, "tsne_max": 5000, "umap": False, "seed": 0,
        "border_width": 3, "compare": []}
