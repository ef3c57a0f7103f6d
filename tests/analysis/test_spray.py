"""SpRAy recovers planted clusters; a store directory round-trips through the analysis file."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sprayfix import planted

from lumos.analysis import SpraySettings, analyse, heatmap_features, spray
from lumos.analysis.agreement import border_fraction, rank_correlation
from lumos.analysis.layout import StoreError, read_analysis

FAST = SpraySettings(cluster_counts=(2, 3, 4), tsne_max=200)


def test_planted_clusters_are_recovered_by_the_eigengap_clustering() -> None:
    maps, truth = planted(300, groups=3, noise=0.4)
    result = spray(heatmap_features(maps), FAST)
    assert result.eigengap_k == 3
    assert adjusted_rand_score(truth, result.chosen) > 0.95
    assert result.tsne.shape == (300, 2) and np.isfinite(result.tsne).all()
    assert result.spectral.shape == (300, 32)
    # CoRelAy's order: descending, the smallest (0, three planted components) last
    assert np.all(np.diff(result.eigenvalues) <= 1e-9) and result.eigenvalues[-1] < 1e-9
    np.testing.assert_array_equal(result.smallest_first, result.eigenvalues[::-1])


def test_landmark_tsne_places_every_sample() -> None:
    maps, truth = planted(260, groups=2, noise=0.3)
    result = spray(heatmap_features(maps), SpraySettings(cluster_counts=(2,), tsne_max=100))
    assert np.isfinite(result.tsne).all() and len(np.unique(result.tsne, axis=0)) > 200
    assert adjusted_rand_score(truth, result.clusterings[2]) > 0.95


def test_umap_draws_the_spectral_embedding_beside_tsne() -> None:
    """umap-learn (in the dev extra) draws every sample, through landmarks past tsne_max, and
    keeps the planted groups apart."""
    from sklearn.cluster import KMeans

    maps, truth = planted(260, groups=2, noise=0.3)
    result = spray(heatmap_features(maps), SpraySettings(cluster_counts=(2,), tsne_max=100))
    assert result.umap is not None and result.umap.shape == (260, 2)
    assert np.isfinite(result.umap).all() and len(np.unique(result.umap, axis=0)) > 200
    drawn = KMeans(n_clusters=2, n_init=4, random_state=0).fit_predict(result.umap)
    assert adjusted_rand_score(truth, drawn) > 0.95
    off = spray(heatmap_features(maps), SpraySettings(cluster_counts=(2,), tsne_max=100,
                                                      umap=False))
    assert off.umap is None


def test_rank_correlation_and_border_fraction_match_formulas() -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 6, 6)), rng.normal(size=(4, 6, 6))
    b[0] = 2 * a[0] + 1  # same order: rho 1
    rho = rank_correlation(a, b)
    expected = [spearmanr(a[i].ravel(), b[i].ravel())[0] for i in range(4)]
    np.testing.assert_allclose(rho, expected, atol=1e-12)
    assert rho[0] == pytest.approx(1.0)
    ring = np.ones((6, 6))
    ring[1:5, 1:5] = 0
    frac = border_fraction(np.stack([ring, -ring, 1 - ring, np.ones((6, 6))]), 1)
    np.testing.assert_allclose(frac, [1.0, 1.0, 0.0, 20 / 36])


def test_analyse_writes_virelay_layout_and_compares_methods(store: tuple[Path, np.ndarray]
                                                            ) -> None:
    directory, truth = store
    path, results = analyse(directory, "ig", settings=FAST, compare=["lrp"], progress=False)
    assert path == directory / "analysis-ig.h5"
    assert [a.label for a in results] == [3, 5]
    for a, rows in zip(results, (np.arange(90), np.arange(90, 150)), strict=True):
        assert adjusted_rand_score(truth[rows], a.result.chosen) > 0.9
        # lrp is ig plus noise, stored in another order: matched by sample index
        assert np.nanmean(a.rank_correlation["lrp"]) > 0.5
    with h5py.File(path, "r") as f:
        g = f["3"]
        assert g["index"].dtype == np.uint32 and g["index"].shape == (90,)
        assert g["embedding/spectral"].shape == (90, 32)
        assert g["embedding/spectral"].attrs["eigenvalue"].shape == (32,)
        assert g["embedding/tsne"].shape == (90, 2)
        assert g["embedding/tsne"].attrs["embedding"] == "spectral"
        assert g["embedding/umap"].shape == (90, 2)
        assert g["embedding/umap"].attrs["embedding"] == "spectral"
        k = int(g.attrs["eigengap_k"])
        assert set(g["cluster"]) == {"kmeans-02", "kmeans-03", "kmeans-04"}
        cl = g[f"cluster/kmeans-{k:02d}"]
        assert cl.shape == (90,) and cl.attrs["k"] == k and cl.attrs["embedding"] == "spectral"
        assert g[f"prototype/kmeans-{k:02d}"].shape == (k, 24, 24)
    back = read_analysis(path)
    assert set(back) == {"3", "5"} and back["5"]["index"].tolist() == list(range(90, 150))
    # prototypes are the cluster means of the channel-summed heatmaps
    a = results[0]
    with h5py.File(directory / "ig.h5", "r") as f:
        maps = f["attribution"][:90, 0]
    lab = a.result.chosen
    np.testing.assert_allclose(back["3"]["prototypes"][a.result.eigengap_k][1],
                               maps[lab == 1].mean(axis=0), atol=1e-5)


def test_analyse_errors_name_the_problem(store: tuple[Path, np.ndarray]) -> None:
    directory, _ = store
    with pytest.raises(StoreError, match=r"method 'gradient'.*found: ig, lrp"):
        analyse(directory, "gradient", progress=False)
    with pytest.raises(StoreError, match="class 7 has no heatmaps"):
        analyse(directory, "ig", labels=[7], progress=False)
    assert not (directory / "analysis-ig.h5").exists()


def test_a_failed_write_leaves_the_old_analysis_and_no_temp_file(
        store: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    from lumos.analysis import layout

    directory, _ = store
    path, _ = analyse(directory, "ig", labels=[5], settings=FAST, progress=False)
    before = path.read_bytes()

    def broken(group: object, record: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(layout, "_write_class", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        analyse(directory, "ig", labels=[3], settings=FAST, progress=False)
    assert path.read_bytes() == before
    assert sorted(p.name for p in directory.iterdir() if p.name.startswith(".")) == []
