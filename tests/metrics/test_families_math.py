"""The metric families against their formulas written out plainly (loops, numpy, scipy), float64."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from torch import Tensor, nn

from helpers import small_cnn
from lumos import metrics as M
from lumos.metrics._prep import baseline_values
from lumos.metrics.faithfulness import random_subsets

N, S = 4, 8


@pytest.fixture
def setup() -> tuple[nn.Module, Tensor, Tensor, Tensor]:
    model = small_cnn(size=S)
    x = torch.rand(N, 1, S, S, dtype=torch.float64)
    x[:, :, :2] = 0.0  # a black band: features already at the baseline
    a = torch.randn(N, 1, S, S, dtype=torch.float64)
    y = torch.tensor([0, 3, 5, 9])
    return model, x, a, y


def f(model: nn.Module, x: Tensor, y: Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(x).gather(1, y[:, None])[:, 0].numpy()


def removed(x: Tensor, features: list[int] | np.ndarray, value: float) -> Tensor:
    out = x.clone().reshape(-1)
    out[list(np.asarray(features))] = value
    return out.reshape(x.shape)


def test_faithfulness_correlation_and_sensitivity_n(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, y = setup
    ours = M.faithfulness_correlation(model, x, a, y, n_runs=12, subset_size=10,
                                      generator=torch.Generator().manual_seed(3))
    subsets = random_subsets(N, S * S, 12, 10, torch.Generator().manual_seed(3))
    for i in range(N):
        ai = a[i].reshape(-1).numpy() / np.abs(a[i].numpy()).max()
        fx = f(model, x[i:i + 1], y[i:i + 1])[0]
        low = float(x[i].min())
        drops = [fx - f(model, removed(x[i:i + 1], s, low), y[i:i + 1])[0]
                 for s in subsets[i].numpy()]
        sums = [ai[s].sum() for s in subsets[i].numpy()]
        assert ours[i].item() == pytest.approx(scipy.stats.pearsonr(sums, drops)[0], abs=1e-10)
    again = M.sensitivity_n(model, x, a, y, n=[10], n_runs=12,
                            generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(again[:, 0], ours)


def test_faithfulness_estimate_monotonicity(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, y = setup
    est = M.faithfulness_estimate(model, x, a, y, features_in_step=3)
    mono = M.monotonicity(model, x, a, y, features_in_step=5, curve=True, score="logit")
    for i in range(N):
        xi, yi, ai = x[i:i + 1], y[i:i + 1], a[i].reshape(-1).numpy()
        order = np.argsort(-ai, kind="stable")
        groups = [order[k:k + 3] for k in range(0, S * S, 3)]
        fx, low = f(model, xi, yi)[0], float(xi.min())
        drops = [fx - f(model, removed(xi, g, low), yi)[0] for g in groups]
        sums = [ai[g].sum() / np.abs(ai).max() for g in groups]
        assert est[i].item() == pytest.approx(scipy.stats.pearsonr(sums, drops)[0], abs=1e-10)
        inserted = torch.full_like(xi, low).reshape(-1)
        ascending = np.argsort(np.abs(ai), kind="stable")
        curve = []
        for k in range(0, S * S, 5):
            g = ascending[k:k + 5]
            inserted[g] = xi.reshape(-1)[g]
            curve.append(f(model, inserted.reshape(xi.shape), yi)[0])
        np.testing.assert_allclose(mono[i].numpy(), curve, atol=1e-12)


def test_monotonicity_correlation(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, y = setup
    ours = M.monotonicity_correlation(model, x, a, y, n_samples=3, features_in_step=16,
                                      generator=torch.Generator().manual_seed(1), score="logit")
    k = S * S // 16
    draws = baseline_values(x, "uniform", (k, 3), torch.Generator().manual_seed(1))
    for i in range(N):
        xi, yi, ai = x[i:i + 1], y[i:i + 1], np.abs(a[i].reshape(-1).numpy())
        ai = ai / ai.max()
        order = np.argsort(ai, kind="stable")
        fx = f(model, xi, yi)[0]
        variances, sums = [], []
        for g in range(k):
            feats = order[g * 16:(g + 1) * 16]
            scores = [f(model, removed(xi, feats, float(draws[i, g, d])), yi)[0]
                      for d in range(3)]
            variances.append(np.mean((np.array(scores) - fx) ** 2) / fx ** 2)
            sums.append(ai[feats].sum())
        assert ours[i].item() == pytest.approx(scipy.stats.spearmanr(sums, variances)[0],
                                               abs=1e-10)


def test_region_metrics(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, y = setup
    drops = M.region_perturbation(model, x, a, y, patch_size=3, regions=4, curve=True,
                                  score="logit")
    sel = M.selectivity(model, x, a, y, patch_size=3, curve=True, score="logit")
    # 8 pads to 9 with the one extra row after (Quantus splits floor/ceil): [0,3) [3,6) [6,8)
    edges = [(0, 3), (3, 6), (6, 8)]
    patches = [(r, c) for r in edges for c in edges]
    for i in range(N):
        xi, yi = x[i:i + 1], y[i:i + 1]
        sums = [a[i, 0, r[0]:r[1], c[0]:c[1]].sum().item() for r, c in patches]
        order = np.argsort(-np.array(sums), kind="stable")
        fx, cur, curve = f(model, xi, yi)[0], xi.clone(), []
        for p in order:
            r, c = patches[p]
            cur[0, 0, r[0]:r[1], c[0]:c[1]] = float(xi.min())
            curve.append(f(model, cur, yi)[0])
        np.testing.assert_allclose(sel[i].numpy(), curve, atol=1e-12)
        np.testing.assert_allclose(drops[i].numpy(), fx - np.array(curve[:4]), atol=1e-12)
    aopc = M.region_perturbation(model, x, a, y, patch_size=3, regions=4, score="logit")
    torch.testing.assert_close(aopc, drops.sum(1) / 5)


def test_irof_on_given_segments(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, y = setup
    segments = torch.zeros(N, S, S, dtype=torch.long)
    segments[:, :, 4:] = 1
    segments[:, 4:, :] += 2  # four quadrants 0..3
    ours = M.irof(model, x, a, y, segments=segments, score="logit")
    for i in range(N):
        xi, yi = x[i:i + 1], y[i:i + 1]
        means = [a[i, 0][segments[i] == s].mean().item() for s in range(4)]
        fx, cur, ratios = f(model, xi, yi)[0], xi.clone(), [1.0]
        for s in np.argsort(-np.array(means), kind="stable"):
            cur[0, 0][segments[i] == int(s)] = float(xi.mean())
            ratios.append(f(model, cur, yi)[0] / fx)
        assert ours[i].item() == pytest.approx(1 - np.trapezoid(ratios, dx=1 / 4), abs=1e-10)
    with pytest.raises(ValueError, match="two segments"):
        M.irof(model, x, a, y, segments=torch.zeros(N, S, S, dtype=torch.long))


def test_linear_imputation_solves_the_neighbour_equation() -> None:
    from lumos.metrics.road import linear_imputation

    x = torch.rand(2, 3, 7, 9, dtype=torch.float64)
    hole = torch.rand(2, 7, 9) < 0.6
    out = linear_imputation(x, hole)
    w = np.array([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])
    cells = [(n, c, r, q) for n, r, q in hole.nonzero().tolist() for c in range(3)]
    for n, c, r, q in cells:
        total = weights = 0.0
        for dr in (-1, 0, 1):
            for dq in (-1, 0, 1):
                if 0 <= r + dr < 7 and 0 <= q + dq < 9 and (dr or dq):
                    total += w[dr + 1, dq + 1] * out[n, c, r + dr, q + dq].item()
                    weights += w[dr + 1, dq + 1]
        assert out[n, c, r, q].item() == pytest.approx(total / weights, abs=1e-9)
    assert torch.equal(out[~hole[:, None].expand_as(x)], x[~hole[:, None].expand_as(x)])


def test_road_counts_hits(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, _ = setup
    pred = model(x).argmax(1)
    hits = M.road(model, x, a, pred, percentages=[0, 50], curve=True)
    assert hits[:, 0].tolist() == [1.0] * N  # nothing removed: still the predicted class
    assert set(hits[:, 1].tolist()) <= {0.0, 1.0}


def test_sufficiency_and_consistency(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, _ = setup
    from scipy.spatial.distance import cdist

    pred = model(x).argmax(1).numpy()
    flat = np.abs(a.reshape(N, -1).numpy())
    flat = flat / flat.max(1, keepdims=True)
    d = cdist(flat, flat, "euclidean")
    d = d / d.max()
    ours = M.sufficiency(model, x, a, distance="euclidean", threshold=0.9)
    for i in range(N):
        near = [j for j in range(N) if j != i and d[i, j] <= 0.9]
        want = np.mean([pred[j] == pred[i] for j in near]) if near else np.nan
        assert ours[i].item() == pytest.approx(want, nan_ok=True)
    same = a.clone()
    same[2] = a[0] * 2  # same top-n features and signs as sample 0
    cons = M.consistency(model, x, same, n=3)
    assert cons[0].item() == float(pred[0] == pred[2]) and np.isnan(cons[1].item())


def test_consistency_predicts_only_samples_that_share_their_label(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, _ = setup
    pred = model(x).argmax(1)
    groups = [i % 2 if i < N - 1 else "alone" for i in range(N)]   # the last sample: unique
    seen: list[int] = []

    class Counting(torch.nn.Module):
        def forward(self, v: torch.Tensor) -> torch.Tensor:
            seen.append(len(v))
            return model(v)

    cons = M.consistency(Counting(), x, a, discretise=lambda m: groups)
    assert seen == [sum(groups.count(g) > 1 for g in groups)]   # only those with company
    for i in range(N):
        others = [j for j in range(N) if j != i and groups[j] == groups[i]]
        want = np.mean([bool(pred[j] == pred[i]) for j in others]) if others else np.nan
        assert cons[i].item() == pytest.approx(want, nan_ok=True)

    class Refusing(torch.nn.Module):
        def forward(self, v: torch.Tensor) -> torch.Tensor:
            raise AssertionError("no sample shares its label: nothing to predict")

    alone = M.consistency(Refusing(), x, a, discretise=lambda m: list(range(len(m))))
    assert bool(alone.isnan().all())
