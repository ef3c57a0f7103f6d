"""Sum pooling and SpRAy's features against dense numpy formulas."""

from __future__ import annotations

import numpy as np
import pytest

from lumos.analysis.features import heatmap_features, pooling_matrix, sum_pool


def test_pooling_an_exact_multiple_is_block_sums() -> None:
    maps = np.random.default_rng(0).normal(size=(3, 12, 8))
    pooled = sum_pool(maps, (4, 2))
    expected = maps.reshape(3, 4, 3, 2, 4).sum(axis=(2, 4))
    np.testing.assert_allclose(pooled, expected, rtol=1e-12)


@pytest.mark.parametrize(("n_in", "n_out"), [(28, 16), (7, 3), (5, 5), (3, 8)])
def test_pooling_keeps_the_total_and_splits_cut_cells_by_overlap(n_in: int, n_out: int) -> None:
    p = pooling_matrix(n_in, n_out)
    np.testing.assert_allclose(p.sum(axis=0), 1.0, rtol=1e-12)
    # dense reference: integrate a piecewise-constant signal over each output interval
    fine = int(np.lcm(n_in, n_out))  # sub-cells that both grids align with
    up = np.kron(np.eye(n_in), np.ones(fine // n_in)) / (fine // n_in)   # n_in x fine
    down = np.kron(np.eye(n_out), np.ones(fine // n_out))               # n_out x fine
    np.testing.assert_allclose(p, down @ up.T, atol=1e-12)


def test_features_sum_channels_and_have_unit_norm() -> None:
    a = np.random.default_rng(1).normal(size=(5, 3, 28, 28)).astype(np.float32)
    f = heatmap_features(a, (7, 7))
    assert f.shape == (5, 49) and f.dtype == np.float32
    expected = a.sum(axis=1).reshape(5, 7, 4, 7, 4).sum(axis=(2, 4)).reshape(5, -1)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(f, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)


def test_all_zero_map_stays_zero_and_bad_input_is_named() -> None:
    assert not heatmap_features(np.zeros((2, 1, 8, 8)), (4, 4)).any()
    with pytest.raises(ValueError, match="NaN"):
        heatmap_features(np.full((2, 1, 8, 8), np.nan))
    with pytest.raises(ValueError, match="shaped"):
        heatmap_features(np.zeros((8, 8)))


def test_sum_normalisation_at_full_resolution_is_corelays_example() -> None:
    a = np.random.default_rng(2).normal(1.0, 1.0, size=(4, 2, 6, 5)).astype(np.float32)
    maps = a.sum(axis=1)
    expected = (maps / maps.sum(axis=(1, 2), keepdims=True)).reshape(4, -1)
    np.testing.assert_allclose(heatmap_features(a, None, "sum"), expected, rtol=1e-5)
    a[2] -= a[2].mean()  # relevance that cancels: no sum to divide by
    a[2, 0, 0, 0] -= a[2].sum()
    with pytest.raises(ValueError, match=r"1 heatmap\(s\) sum to 0"):
        heatmap_features(a, None, "sum")
    with pytest.raises(ValueError, match="normalize must be one of l2, sum"):
        heatmap_features(a, None, "max")
