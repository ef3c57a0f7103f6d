"""The metrics' speed paths compute what the plain code computes: the scoring copy of the model,
the row sorts, the top-k selection and the scores shared between the methods of evaluate."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from helpers import small_cnn, untouched
from lumos import metrics as M
from lumos.metrics._common import Scorer, forward_scores
from lumos.metrics._fast import scoring_model
from lumos.metrics._shared import sharing_scores
from lumos.metrics._sort import argsort_rows, first_ranked, kth_largest
from lumos.metrics.perturbation import removal_steps


def bn_cnn() -> nn.Module:
    """A float32 CNN whose BatchNorms have non-trivial statistics (what the copy folds)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8),
                          nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_scoring_copy_computes_the_model_and_follows_its_changes() -> None:
    model, x = bn_cnn(), torch.rand(16, 1, 12, 12)
    with untouched(model):
        fast = scoring_model(model, x)
        assert fast is not model
        with torch.inference_mode():
            torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-5)
        assert scoring_model(model, x) is fast  # kept while the model stays the same
    with torch.no_grad():
        model[0].weight.mul_(2.0)  # an in-place change: a new copy
    again = scoring_model(model, x)
    assert again is not fast
    with torch.inference_mode():
        torch.testing.assert_close(again(x), model(x), rtol=1e-5, atol=1e-5)
    # the model itself where a copy would not be the same computation
    assert scoring_model(model.double(), x.double()) is model
    model.float().train()
    assert scoring_model(model, x) is model
    model.eval()
    model[1].train()  # one BatchNorm on batch statistics
    assert scoring_model(model, x) is model
    model.eval()
    handle = model[2].register_forward_hook(lambda *_: None)
    assert scoring_model(model, x) is model
    handle.remove()


def test_scoring_copy_never_writes_into_its_input() -> None:
    torch.manual_seed(0)  # ReLUs on the input and on a view of it stay out of place
    model = nn.Sequential(nn.ReLU(), nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.ReLU(), nn.Linear(4 * 10 * 10, 3)).eval()
    x = torch.randn(5, 1, 12, 12)
    before = x.clone()
    fast = scoring_model(model, x)
    assert fast is not model
    relus = [m.inplace for m in fast.modules() if isinstance(m, nn.ReLU)]
    assert relus == [False, True, False]
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(before), rtol=1e-5, atol=1e-5)
    assert torch.equal(x, before)


def test_fast_scores_and_metrics_agree_with_the_model() -> None:
    model, x = bn_cnn(), torch.rand(8, 1, 12, 12)
    y = torch.arange(8)
    scorer, rows = Scorer(y, 8, "softmax"), torch.arange(8)
    fast = forward_scores(model, x.__getitem__, rows, scorer, 3)
    exact = forward_scores(model, x.__getitem__, rows, scorer, 3, fast=False)
    torch.testing.assert_close(fast, exact, rtol=1e-5, atol=1e-6)
    a = torch.randn(8, 1, 12, 12)
    curve = M.pixel_flipping(model, x, a, y, steps=6)
    with torch.inference_mode():  # step by step with the model itself
        step, steps = removal_steps(x, a, 6)
        flat = x.reshape(8, 1, -1)
        want = [model(torch.where((step < k)[:, None], 0.0, flat).reshape(x.shape))
                .gather(1, y[:, None])[:, 0] for k in range(steps + 1)]
    torch.testing.assert_close(curve, torch.stack(want, 1), rtol=1e-5, atol=1e-5)


def test_row_sorts_match_a_stable_sort() -> None:
    gen = torch.Generator().manual_seed(0)
    for trial in range(120):
        p = int(torch.randint(2, 40, (1,), generator=gen))
        a = torch.randint(-3, 4, (5, p), generator=gen).double() * 0.375
        if trial % 3 == 0:
            a = torch.randn(5, p, generator=gen, dtype=torch.float64)  # not float32-exact
        if trial % 4 == 0:
            a[a == 0] = -0.0  # ties with +0.0
        for descending in (False, True):
            want = torch.sort(a, dim=1, descending=descending, stable=True).indices
            assert torch.equal(argsort_rows(a, descending), want)
        k = int(torch.randint(1, p + 1, (1,), generator=gen))
        top = torch.sort(a, dim=1, descending=True, stable=True)
        assert torch.equal(kth_largest(a, k)[:, 0], top.values[:, k - 1])
        chosen = torch.zeros_like(a, dtype=torch.bool).scatter_(1, top.indices[:, :k], True)
        assert torch.equal(first_ranked(a, k), chosen)


class Counting(nn.Module):
    """Counts the inputs it scores (hooks would turn the scoring copy off; this does not)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.seen = inner, 0

    def forward(self, x: Tensor) -> Tensor:
        self.seen += x.shape[0]
        return self.inner(x)


def test_methods_of_one_evaluate_share_attribution_free_scores() -> None:
    model = Counting(small_cnn(size=8)).eval()
    x, y = torch.rand(4, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 3, 5, 9])
    maps = [torch.randn(4, 1, 8, 8, dtype=torch.float64) for _ in range(2)]

    def run(a: Tensor) -> tuple[Tensor, Tensor]:
        corr = M.faithfulness_correlation(model, x, a, y, n_runs=6, subset_size=10,
                                          generator=torch.Generator().manual_seed(1))
        return corr, M.non_sensitivity(model, x, a, y, features_in_step=8)

    alone = [run(a) for a in maps]
    model.seen = 0
    run(maps[0])
    once = model.seen
    model.seen = 0
    with sharing_scores():
        shared = [run(a) for a in maps]
    assert model.seen < 2 * once  # the second map reused the perturbed scores
    for got, want in zip(shared, alone, strict=True):
        for g, w in zip(got, want, strict=True):
            assert torch.equal(g, w)
    x.add_(0.0)  # an in-place change of the inputs: nothing is reused for them
    model.seen = 0
    with sharing_scores():
        run(maps[0])
        x.mul_(1.0)
        run(maps[1])
    assert model.seen == 2 * once
    result = M.evaluate(model, (x, y), {"a": lambda xx, t: maps[0], "b": lambda xx, t: maps[1]},
                        [M.FaithfulnessCorrelation(n_runs=6, subset_size=10)], progress=False)
    want_a = M.FaithfulnessCorrelation(n_runs=6, subset_size=10)
    assert result.mean("b", want_a.name) == pytest.approx(float(torch.nanmean(
        M.faithfulness_correlation(model, x, maps[1], y, n_runs=6, subset_size=10,
                                   generator=torch.Generator().manual_seed(0)))))


def test_exact_copy_pools_bit_for_bit() -> None:
    """The copy for metrics that need the model's own rounding: its max pooling (strided
    slices) gives the model's bits for every window shape; models without one get themselves."""
    from lumos._pooling import SlicedMaxPool2d
    from lumos.metrics._fast import exact_model

    torch.manual_seed(0)
    for kernel, stride, padding in [(2, 2, 0), (3, 1, 1), (3, 2, 1), ((2, 3), (1, 2), (1, 0))]:
        pool = nn.MaxPool2d(kernel, stride, padding)
        for x in (torch.randn(3, 4, 11, 9), torch.randn(4, 10, 7)):
            assert torch.equal(SlicedMaxPool2d(pool)(x), pool(x))
    model, x = bn_cnn(), torch.rand(16, 1, 12, 12)
    with untouched(model):
        exact = exact_model(model, x)
        assert exact is not model and exact_model(model, x) is exact
        assert isinstance(exact[3], SlicedMaxPool2d)
        with torch.inference_mode():
            assert torch.equal(exact(x), model(x))
    flat = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).eval()
    assert exact_model(flat, torch.rand(3, 1, 2, 2)) is flat
