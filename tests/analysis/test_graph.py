"""kNN graph, affinity, normalised Laplacian, eigenpairs and eigengap against dense numpy."""

from __future__ import annotations

import numpy as np
import pytest

from lumos.analysis import graph


def _points(n: int = 120, d: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_exact_knn_matches_a_full_distance_matrix() -> None:
    x = _points()
    index, dist = graph.knn(x, 7, block=50)
    full = np.linalg.norm(x[:, None, :].astype(np.float64) - x[None], axis=2)
    np.fill_diagonal(full, np.inf)
    expected = np.argsort(full, axis=1)[:, :7]
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(dist, np.take_along_axis(full, expected, 1), rtol=1e-4)


def test_inverted_file_knn_finds_most_true_neighbours_on_clustered_data() -> None:
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(20, 16)) * 4
    x = (centres[rng.integers(0, 20, 4000)] + rng.normal(size=(4000, 16))).astype(np.float32)
    exact, _ = graph.knn(x, 10)
    approx, dist = graph.knn(x, 10, approximate=True, probe=3)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx, strict=True)])
    assert recall > 0.8
    assert (approx != np.arange(4000)[:, None]).all() and (np.diff(dist, axis=1) >= 0).all()


def test_affinity_is_the_symmetric_self_tuning_kernel_on_knn_edges() -> None:
    x = _points(40, 3)
    index, dist = graph.knn(x, 5)
    w = graph.affinity(index, dist).toarray()
    full = np.linalg.norm(x[:, None, :].astype(np.float64) - x[None], axis=2)
    scale = dist[:, -1].astype(np.float64)
    kernel = np.exp(-full ** 2 / np.outer(scale, scale))
    edge = np.zeros((40, 40), dtype=bool)
    edge[np.repeat(np.arange(40), 5), index.ravel()] = True
    edge |= edge.T
    np.testing.assert_allclose(w, np.where(edge, kernel, 0.0), rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(w, w.T)


def test_laplacian_and_spectrum_match_dense_eigh() -> None:
    x = _points(200, 4)
    w = graph.affinity(*graph.knn(x, 8))
    dense = w.toarray()
    d = dense.sum(axis=1)
    lap = np.eye(200) - dense / np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(graph.laplacian(w).toarray(), lap, atol=1e-12)
    expected = np.linalg.eigvalsh(lap)[:6]
    values, vectors = graph.spectrum(w, 6)  # 200 nodes: the sparse eigsh path
    np.testing.assert_allclose(values, expected, atol=1e-7)
    np.testing.assert_allclose(lap @ vectors, vectors * values, atol=1e-6)
    assert values[0] == pytest.approx(0.0, abs=1e-8)


def test_eigengap_picks_the_count_before_the_largest_gap() -> None:
    assert graph.eigengap(np.array([0.0, 0.0, 0.0, 0.6, 0.62, 0.7]), 5) == 3
    assert graph.eigengap(np.array([0.0, 0.01, 0.5, 0.55]), 3) == 2
    with pytest.raises(ValueError, match="at least 3"):
        graph.eigengap(np.array([0.0, 1.0]), 4)


def test_binary_affinity_is_corelays_sparse_knn() -> None:
    x = _points(30, 3)
    index, dist = graph.knn(x, 4)
    a = np.zeros((30, 30))
    a[np.repeat(np.arange(30), 4), index.ravel()] = 1.0
    np.testing.assert_array_equal(graph.affinity(index, dist, "binary").toarray(), (a + a.T) / 2)
    with pytest.raises(ValueError, match="affinity must be one of self-tuning, binary"):
        graph.affinity(index, dist, "gaussian")


@pytest.mark.parametrize("n", [40, 150])  # the dense and the eigsh path
def test_magnitude_selection_takes_the_largest_abs_mu(n: int) -> None:
    """A graph with a bipartite part has Laplacian eigenvalues near 2 (|mu| near 1): CoRelAy's
    choice keeps them, lumos's smallest-first choice does not."""
    x = _points(n, 3, seed=4)
    w = graph.affinity(*graph.knn(x, 5)).tolil()
    w[0, :], w[:, 0], w[1, :], w[:, 1] = 0, 0, 0, 0
    w[0, 1] = w[1, 0] = 1.0  # two nodes joined only to each other: mu = -1 (lambda = 2)
    w = w.tocsr()
    dense = w.toarray()
    d = dense.sum(axis=1)
    mu = np.linalg.eigvalsh(dense / np.sqrt(np.outer(d, d)))
    by_magnitude = np.sort(1 - mu[np.argsort(-np.abs(mu))[:6]])
    values, _ = graph.spectrum(w, 6, select="magnitude")
    np.testing.assert_allclose(values, by_magnitude, atol=1e-7)
    assert values[-1] == pytest.approx(2.0)
    smallest, _ = graph.spectrum(w, 6)
    np.testing.assert_allclose(smallest, np.sort(1 - mu)[:6], atol=1e-7)
    assert smallest.max() < 1.9
