"""Robustness, localisation, complexity, randomisation and axiomatic metrics against their
formulas; bad inputs; the model untouched; the class forms."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from torch import Tensor, nn

import lumos
from helpers import small_cnn, untouched
from lumos import metrics as M
from lumos.attribution.gradient import Gradient, InputXGradient

N, S = 4, 8


def saliency(model: nn.Module):  # type: ignore[no-untyped-def]
    return Gradient(model)


@pytest.fixture
def setup() -> tuple[nn.Module, Tensor, Tensor, Tensor]:
    model = small_cnn(size=S)
    x = torch.rand(N, 1, S, S, dtype=torch.float64)
    y = torch.tensor([0, 3, 5, 9])
    a = InputXGradient(model).attribute(x, target=y)
    return model, x, a, y


def test_sensitivities_and_lipschitz(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, y = setup
    grad = saliency(model)
    gen = torch.Generator().manual_seed(4)
    mx = M.max_sensitivity(model, x, None, y, explain=grad, n_samples=3, generator=gen)
    gen = torch.Generator().manual_seed(4)
    av = M.avg_sensitivity(model, x, None, y, explain=grad, n_samples=3, generator=gen,
                           explain_batch=4)
    gen = torch.Generator().manual_seed(4)
    base = grad.attribute(x, target=y).reshape(N, -1)
    ratios = []
    for _ in range(3):
        noise = torch.rand(x.shape, generator=gen, dtype=torch.float64) * 0.4 - 0.2
        moved = grad.attribute(x + noise, target=y).reshape(N, -1)
        ratios.append((moved - base).norm(dim=1) / base.norm(dim=1))
    torch.testing.assert_close(mx, torch.stack(ratios).amax(0))
    torch.testing.assert_close(av, torch.stack(ratios).mean(0))
    lle = M.local_lipschitz_estimate(model, x, a, y, explain=InputXGradient(model), n_samples=2,
                                     normalise=False, generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(2)
    vals = []
    for _ in range(2):
        u = torch.randn(x.shape, generator=gen, dtype=torch.float64) * 0.1
        moved = InputXGradient(model).attribute(x + u, target=y)
        vals.append((moved - a).reshape(N, -1).norm(dim=1) / (u.reshape(N, -1).norm(dim=1)
                                                              + 1e-10))
    torch.testing.assert_close(lle, torch.stack(vals).amax(0))


def test_continuity_and_translate(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, _, y = setup
    moved = M.robustness.translate(x, 3, x.reshape(N, -1).amin(1))
    assert torch.equal(moved[..., 3:], x[..., :-3])
    assert torch.equal(moved[..., :3], x.reshape(N, -1).amin(1)[:, None, None, None].expand(
        N, 1, S, 3))
    grad = saliency(model)
    ours = M.continuity(model, x, None, y, explain=grad, n_steps=4, normalise=False)
    base = grad.attribute(x, target=y).abs().reshape(N, -1)
    fill = x.reshape(N, -1).amin(1)
    want = torch.stack([
        (grad.attribute(M.robustness.translate(x, s, fill), target=y).abs().reshape(N, -1)
         - base).abs().sum(1)
        / ((M.robustness.translate(x, s, fill) - x).reshape(N, -1).norm(dim=1) + 1e-9)
        for s in (-8 + 4, -8 + 8, -8 + 12, -8 + 16)]).amax(0)
    torch.testing.assert_close(ours, want)


def test_relative_stabilities(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, y = setup
    ixg = InputXGradient(model)
    kw = {"explain": ixg, "n_samples": 2, "exclude_changed": False}
    ris = M.relative_input_stability(model, x, a, y, generator=torch.Generator().manual_seed(0),
                                     **kw)
    ros = M.relative_output_stability(model, x, a, y,
                                      generator=torch.Generator().manual_seed(0), **kw)
    rrs = M.relative_representation_stability(model, x, a, y, layers=["1"],
                                              generator=torch.Generator().manual_seed(0), **kw)
    gen = torch.Generator().manual_seed(0)
    eps = 1e-6
    rel = (lambda d, b: d / (b + (b == 0) * eps))
    want = {"ris": [], "ros": [], "rrs": []}
    for _ in range(2):
        u = 0.02 + torch.rand(x.shape, generator=gen, dtype=torch.float64) * 0.18
        xs = x + u
        top = rel(a - ixg.attribute(xs, target=y), a).reshape(N, -1).norm(dim=1)
        want["ris"].append(top / rel(x - xs, x).reshape(N, -1).norm(dim=1))
        want["ros"].append(top / (model(x) - model(xs)).norm(dim=1))
        h, hs = model[:2](x).reshape(N, -1), model[:2](xs).reshape(N, -1)
        want["rrs"].append(top / rel(h - hs, h).norm(dim=1))
    for got, key in ((ris, "ris"), (ros, "ros"), (rrs, "rrs")):
        torch.testing.assert_close(got, torch.stack(want[key]).detach().amax(0))


def test_localisation_formulas() -> None:
    from sklearn.metrics import roc_auc_score

    a = torch.randn(3, 1, 6, 6, dtype=torch.float64)
    mask = torch.zeros(3, 6, 6, dtype=torch.bool)
    mask[:, 1:4, 2:5] = True
    mask[2] = False
    mask[2, 0, 0] = True
    flat, m = a.reshape(3, -1).numpy(), mask.reshape(3, -1).numpy()
    pg = M.pointing_game(a, mask)
    rma = M.relevance_mass_accuracy(a, mask)
    rra = M.relevance_rank_accuracy(a, mask)
    tki = M.top_k_intersection(a, mask, k=5)
    auc = M.localisation_auc(a, mask)
    foc = M.focus(a, mask)
    al = M.attribution_localisation(a, mask)
    for i in range(3):
        assert pg[i].item() == float(m[i][flat[i].argmax()])
        assert rma[i].item() == pytest.approx(flat[i][m[i]].sum() / flat[i].sum())
        top = np.argsort(-flat[i], kind="stable")
        assert rra[i].item() == pytest.approx(m[i][top[:m[i].sum()]].mean())
        assert tki[i].item() == pytest.approx(m[i][top[:5]].mean())
        assert auc[i].item() == pytest.approx(roc_auc_score(m[i], flat[i]))
        pos = np.clip(flat[i], 0, None)
        assert foc[i].item() == pytest.approx(pos[m[i]].sum() / pos.sum(), rel=1e-6)
        mag = np.abs(flat[i])
        assert al[i].item() == pytest.approx(mag[m[i]].sum() / mag.sum(), rel=1e-6)
    quad = M.quadrant_mask(torch.tensor([[1, 0, 0, 1]]), 4, 4)
    assert quad[0].int().tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]


def test_complexity_formulas() -> None:
    a = torch.randn(3, 1, 5, 5, dtype=torch.float64)
    mag = a.abs().reshape(3, -1).numpy()
    ent = M.complexity(a)
    eff = M.effective_complexity(a, eps=0.5)
    gini = M.sparseness(a)
    for i in range(3):
        assert ent[i].item() == pytest.approx(scipy.stats.entropy(mag[i]), abs=1e-9)
        assert eff[i].item() == (mag[i] / mag[i].max() > 0.5).sum()
        s = np.sort(mag[i])
        n = len(s)
        assert gini[i].item() == pytest.approx(
            ((2 * np.arange(1, n + 1) - n - 1) * s).sum() / (n * s.sum()))


def test_randomisation(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, y = setup
    from skimage.metrics import structural_similarity

    from lumos.metrics.mprt import randomised_models, ssim

    p, q = torch.rand(2, 64, dtype=torch.float64), torch.rand(2, 64, dtype=torch.float64)
    ours = ssim(p, q, (8, 8))
    for i in range(2):
        both = np.concatenate([p[i].numpy(), q[i].numpy()])
        want = structural_similarity(p[i].reshape(8, 8).numpy(), q[i].reshape(8, 8).numpy(),
                                     data_range=both.max() - both.min())
        assert ours[i].item() == pytest.approx(want, abs=1e-10)
    ixg = InputXGradient(model)
    with untouched(model):
        layers = [name for name, _ in randomised_models(model, "top_down")]
        rows = M.mprt(model, x, a, y, explain=ixg, reduce="none")
    assert layers == ["8", "6", "2", "0"] and rows.shape == (4, N)
    state = torch.random.get_rng_state()
    last = list(randomised_models(model, "top_down"))[-1][1]
    assert torch.equal(state, torch.random.get_rng_state())
    want = scipy.stats.spearmanr(a[0].abs().reshape(-1).numpy(),
                                 ixg.__class__(last).attribute(x, target=y)[0].abs()
                                 .reshape(-1).numpy())[0]
    assert rows[-1, 0].item() == pytest.approx(want, abs=1e-10)
    # every row is the model randomised up to that layer (a cascade mutates one copy: each
    # model is explained before the next layer is reset)
    for k, (_, step) in enumerate(randomised_models(model, "top_down")):
        b = ixg.__class__(step).attribute(x, target=y)[0].abs().reshape(-1).numpy()
        first = scipy.stats.spearmanr(a[0].abs().reshape(-1).numpy(), b)[0]
        assert rows[k, 0].item() == pytest.approx(first, abs=1e-10)
    assert not torch.allclose(rows[0], rows[-1])
    other = M.mprt.__wrapped__ if hasattr(M.mprt, "__wrapped__") else None
    assert other is None
    smooth = M.smooth_mprt(model, x, None, y, explain=ixg, n_samples=2, reduce="mean")
    assert smooth.shape == (N,) and bool(torch.isfinite(smooth).all())
    # an LRP rebuilt once per randomised model, noisy copies in one or several calls: the same
    # as a fresh LRP per copy
    per_copy = M.smooth_mprt(model, x, None, y, n_samples=3, explain_batch=1,
                             model_explain=lambda m, xx, t: lumos.LRP(m).attribute(xx, target=t))
    together = M.smooth_mprt(model, x, None, y, n_samples=3, explain=lumos.LRP(model))
    torch.testing.assert_close(together, per_copy, rtol=1e-10, atol=1e-12)
    rl = M.random_logit(model, x, a, y, explain=ixg, similarity="pearson",
                        generator=torch.Generator().manual_seed(0))
    off = M.mprt.__globals__["off_classes"](y, 10, torch.Generator().manual_seed(0))
    assert not bool((off == y).any())
    want_rl = [scipy.stats.pearsonr(a[i].reshape(-1).numpy() / a[i].abs().max().item(),
                                    (b := ixg.attribute(x[i:i + 1], target=off[i:i + 1]))
                                    .reshape(-1).numpy() / b.abs().max().item())[0]
               for i in range(N)]
    np.testing.assert_allclose(rl.numpy(), want_rl, atol=1e-10)


def test_axioms() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).double().eval()
    x = torch.rand(5, 1, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    base = x.reshape(5, -1).amin(1)[:, None, None, None]
    exact = InputXGradient(model).attribute(x - base, target=y)  # linear: exact completeness
    assert M.completeness(model, x, exact, y).tolist() == [1.0] * 5
    assert M.completeness(model, x, exact * 1.5, y).tolist() == [0.0] * 5
    with untouched(model):
        assert M.input_invariance(model, x, None, y, explain=Gradient(model)).tolist() == [1.0] * 5
        assert M.input_invariance(model, x, None, y, explain=InputXGradient(model)).tolist() \
            == [0.0] * 5
    w = model[1].weight.detach()
    weights = w[y].reshape(5, -1).clone()
    weights[:, :3] = 0.0
    model[1].weight.data[:, :3] = 0.0
    a = weights.reshape(5, 1, 4, 4) * 0 + (weights != 0).reshape(5, 1, 4, 4).double()
    counts = M.non_sensitivity(model, x, a, y, normalise=False)
    blacks = (x.reshape(5, -1) == x.reshape(5, -1).amin(1, keepdim=True)).sum(1)
    assert counts.tolist() == blacks.double().tolist()  # the black pixel changes nothing


def test_bad_inputs_raise_one_clear_error(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, a, y = setup
    with pytest.raises(ValueError, match="shape"):
        M.faithfulness_estimate(model, x, a[:, :, :4], y)
    with pytest.raises(ValueError, match="NaN"):
        M.irof(model, x, torch.full_like(a, float("nan")), y)
    mask = torch.zeros(N, S, S, dtype=torch.bool)
    mask[:2, :3, :3] = True
    with pytest.raises(ValueError, match=r"samples \[2, 3\] is empty"):
        M.pointing_game(a, mask)
    assert M.pointing_game(a, mask, empty="nan")[2:].isnan().all()
    with pytest.raises(ValueError, match="mask has shape"):
        M.relevance_mass_accuracy(a, mask[:, :4])
    with pytest.raises(ValueError, match="baseline"):
        M.faithfulness_correlation(model, x, a, y, baseline="grey", subset_size=5)
    with pytest.raises(ValueError, match="subset_size"):
        M.faithfulness_correlation(model, x, a, y, subset_size=S * S)
    with pytest.raises(ValueError, match="explain="):
        M.max_sensitivity(model, x, a, y)
    with pytest.raises(TypeError, match="has no option 'n_run'"):
        M.FaithfulnessCorrelation(n_run=3)
    with pytest.raises(TypeError, match="cannot rebuild"):
        M.mprt(model, x, a, y, explain=lambda xx, t: xx)


def test_every_metric_leaves_the_model_untouched(setup) -> None:  # type: ignore[no-untyped-def]
    model, x, _, y = setup
    mask = torch.zeros(N, S, S, dtype=torch.bool)
    mask[:, 2:6, 2:6] = True
    ixg = InputXGradient(model)
    with untouched(model):
        result = M.evaluate(model, (x, y), {"ixg": ixg, "random": M.random_attribution()},
                            [M.FaithfulnessCorrelation(n_runs=5, subset_size=8),
                             M.FaithfulnessEstimate(features_in_step=16), "monotonicity",
                             M.MonotonicityCorrelation(n_samples=2, features_in_step=16),
                             M.SensitivityN(n_runs=5), M.Selectivity(patch_size=4),
                             M.RegionPerturbation(patch_size=4), M.ROAD(percentages=(50,)),
                             "road_lerf", "sufficiency", "irof", M.MaxSensitivity(n_samples=2),
                             M.AvgSensitivity(n_samples=2), "continuity", "consistency",
                             M.LocalLipschitzEstimate(n_samples=2),
                             M.RelativeInputStability(n_samples=2),
                             M.RelativeOutputStability(n_samples=2),
                             M.RelativeRepresentationStability(n_samples=2), "localisation",
                             "complexity", "random_logit", "mprt", M.SmoothMPRT(n_samples=2),
                             "completeness", M.NonSensitivity(features_in_step=16),
                             "input_invariance"],
                            masks=mask, progress=False)
    assert set(result.by_family()) == {"faithfulness", "robustness", "localisation",
                                       "complexity", "randomisation", "axiomatic"}
    assert result.better["road_morf"] == "lower" and result.better["road_lerf"] == "higher"
    text = result.tables()
    assert "localisation\nmethod" in text and "pointing_game (↑)" in text and " *" in text
    for metric in result.metrics:
        assert len(result.values["ixg"][metric]) == N
