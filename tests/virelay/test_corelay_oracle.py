"""Must show 2: on the same stored heatmaps, CoRelAy's SpRAy pipeline and ``lumos spray
--corelay`` with the same settings give the same eigenvalues (to 1e-6) and the same k-means
clustering for the eigengap's k (adjusted Rand index 1.0).

CoRelAy's pipeline is its ``SpectralClustering`` with the preprocessing of its SpRAy example
(channels summed, each map divided by its sum, flattened: a user of CoRelAy writes these three
processors), ``SparseKNN``, ``EigenDecomposition`` and ``KMeans`` given lumos's k-means seed and
restarts. lumos solves small classes densely (``numpy.linalg.eigh``) and CoRelAy always with
ARPACK, so the dense path is checked against ARPACK too; the 120 heatmaps of a method analysed
as one group go through lumos's ARPACK path.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from lumos.analysis import SpraySettings, heatmap_features, spray
from lumos.analysis.layout import read_analysis
from lumos.analysis.spray import CORELAY
from lumos.cli import main
from lumos.store import open_store
from lumos.store.layout import analysis_file

EIGEN, NEIGHBORS = 8, 6


def corelay_spray(heatmaps: np.ndarray, k: int, n_eigen: int = EIGEN,
                  neighbors: int = NEIGHBORS) -> tuple[np.ndarray, np.ndarray]:
    """CoRelAy's eigenvalues and k-means labels (k clusters) of ``(N, C, H, W)`` heatmaps."""
    from corelay.pipeline.spectral import SpectralClustering
    from corelay.processor.affinity import SparseKNN
    from corelay.processor.base import Processor
    from corelay.processor.clustering import KMeans
    from corelay.processor.embedding import EigenDecomposition
    from corelay.processor.flow import Sequential

    class SumChannel(Processor):  # type: ignore[misc]
        def function(self, data: Any) -> Any:
            return data.sum(axis=1)

    class Normalize(Processor):  # type: ignore[misc]
        def function(self, data: Any) -> Any:
            return data / data.sum(axis=(1, 2), keepdims=True)

    class Flatten(Processor):  # type: ignore[misc]
        def function(self, data: Any) -> Any:
            return data.reshape(len(data), -1)

    pipeline = SpectralClustering(
        preprocessing=Sequential([SumChannel(), Normalize(), Flatten()]),
        affinity=SparseKNN(n_neighbors=neighbors, symmetric=True),
        embedding=EigenDecomposition(n_eigval=n_eigen, is_output=True),
        clustering=KMeans(n_clusters=k, kwargs={"n_init": 4, "random_state": 0},
                          is_output=True))
    (eigenvalues, _), labels = pipeline(heatmaps)
    return np.asarray(eigenvalues), np.asarray(labels)


def _store_copy(mnist_store: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "mnist"
    shutil.copytree(mnist_store, folder, ignore=shutil.ignore_patterns("analysis-*", "virelay"))
    return folder


@pytest.mark.slow
def test_lumos_spray_corelay_equals_corelays_pipeline(mnist_store: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    folder = _store_copy(mnist_store, tmp_path)
    store = open_store(folder)
    assert main(["spray", str(folder), "--method", "ig", "--method", "lrp:epsilon-plus",
                 "--corelay", "--eigen", str(EIGEN), "--neighbors", str(NEIGHBORS),
                 "--clusters", "2", "--label", "0", "--label", "1", "--label", "7",
                 "--no-umap", "--quiet"]) == 0
    worst, checked = 0.0, 0
    for key in store.methods:
        stored = store.arrays(key, ("attribution", "label"))
        for group, c in read_analysis(analysis_file(folder, key)).items():
            heatmaps = stored["attribution"][stored["label"] == int(group)]
            k = c["eigengap_k"]
            eigenvalues, labels = corelay_spray(heatmaps, k)
            worst = max(worst, float(np.abs(eigenvalues - c["eigenvalue"]).max()))
            assert adjusted_rand_score(labels, c["clusterings"][k]) == 1.0, (key, group, k)
            checked += 1
    assert checked == 6 and worst <= 1e-6
    with capsys.disabled():
        print(f"\nCoRelAy oracle, 6 classes (dense eigh): max |eigenvalue difference| {worst:.1e}")


@pytest.mark.slow
def test_arpack_path_equals_corelay_on_a_whole_method(mnist_store: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    settings = SpraySettings(**CORELAY, n_eigen=16, neighbors=10, cluster_counts=(),
                             tsne_max=50, umap=False)
    for key in ("ig", "lrp:epsilon-plus"):
        with h5py.File(open_store(mnist_store).path(key), "r") as f:
            heatmaps = f["attribution"][()]
        assert len(heatmaps) > max(64, 2 * settings.n_eigen + 1)  # lumos uses eigsh here
        result = spray(heatmap_features(heatmaps, settings.size, settings.normalize), settings)
        eigenvalues, labels = corelay_spray(heatmaps, result.eigengap_k, 16, 10)
        gap = float(np.abs(eigenvalues - result.eigenvalues).max())
        assert gap <= 1e-6
        assert adjusted_rand_score(labels, result.chosen) == 1.0
        with capsys.disabled():
            print(f"CoRelAy oracle, {key} as one group of {len(heatmaps)} (eigsh): max "
                  f"|eigenvalue difference| {gap:.1e}, k = {result.eigengap_k}, ARI 1.0")


def test_lumos_defaults_differ_from_corelays_and_say_so(mnist_store: Path) -> None:
    """Without ``--corelay`` lumos's own choices (pooled L2-normalised features, self-tuning
    weights) give another spectrum: the docs' reason for the option."""
    with h5py.File(open_store(mnist_store).path("ig"), "r") as f:
        heatmaps = f["attribution"][()][:40]
    own = SpraySettings(n_eigen=EIGEN, neighbors=NEIGHBORS, cluster_counts=(), tsne_max=50,
                        umap=False)
    result = spray(heatmap_features(heatmaps, own.size, own.normalize), own)
    eigenvalues, _ = corelay_spray(heatmaps, 2)
    assert np.abs(eigenvalues - result.eigenvalues).max() > 1e-3
