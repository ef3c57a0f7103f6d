"""Pixel flipping, AOPC and insertion/deletion: exact linear cases, oracles and bad input."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from helpers import untouched
from lumos.metrics.perturbation import (
    aopc,
    auc,
    insertion_deletion,
    patch_index,
    pixel_flipping,
    removal_steps,
)


def linear(d: int = 64, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d, 1).double().eval()


def contributions(model: nn.Linear, x: Tensor) -> Tensor:
    """The exact attribution of a linear model: w * x."""
    return model.weight[0].detach() * x


def analytic_curve(model: nn.Linear, c: Tensor, steps: int, descending: bool = True) -> Tensor:
    """f after removing (setting to 0) the contributions in order, ``steps`` equal steps."""
    ordered = torch.sort(c, dim=1, descending=descending, stable=True).values
    per = c.shape[1] // steps
    total = c.sum(1) + model.bias.detach()
    removed = ordered.cumsum(1)[:, per - 1::per]
    return torch.cat([total[:, None], total[:, None] - removed], 1)


@pytest.mark.parametrize("steps", [64, 16, 4])
def test_linear_morf_curve_is_the_sum_of_remaining_contributions(steps: int) -> None:
    model = linear()
    x = torch.randn(8, 64, dtype=torch.float64)
    c = contributions(model, x)
    with untouched(model):
        curve = pixel_flipping(model, x, c, steps=steps, fill=0.0)
    assert curve.shape == (8, steps + 1)
    torch.testing.assert_close(curve, analytic_curve(model, c, steps), rtol=0, atol=1e-6)
    lerf = pixel_flipping(model, x, c, steps=steps, order="lerf")
    torch.testing.assert_close(lerf, analytic_curve(model, c, steps, descending=False),
                               rtol=0, atol=1e-6)


def test_exact_attribution_beats_random_in_aopc() -> None:
    model = linear()
    x = torch.randn(32, 64, dtype=torch.float64)
    exact = aopc(pixel_flipping(model, x, contributions(model, x), steps=16))
    random = aopc(pixel_flipping(model, x, torch.randn_like(x), steps=16))
    # MoRF by the exact contributions removes the largest possible sum at every step, so
    # no ordering can have a larger AOPC on any sample; on average random is far below.
    assert bool((exact >= random - 1e-12).all())
    assert exact.mean() > random.mean() + 0.5 * exact.std()


def test_lerf_of_exact_attribution_is_flat_until_the_end() -> None:
    # "Flat" is exact only where the removed contributions are exactly zero: LeRF removes the
    # most negative contributions first, which *raises* the score. So: 48 of 64 features
    # contribute nothing (x_i = 0, like MNIST's background) and 16 contribute positively.
    model = linear()
    w = model.weight[0].detach()
    x = torch.zeros(6, 64, dtype=torch.float64)
    active = torch.stack([torch.randperm(64)[:16] for _ in range(6)])
    values = torch.rand(6, 16, dtype=torch.float64) + 0.1
    x.scatter_(1, active, values * torch.sign(w[active]))
    curve = pixel_flipping(model, x, contributions(model, x), steps=16, order="lerf")
    assert torch.equal(curve[:, :13], curve[:, :1].expand(-1, 13))    # 12 steps remove zeros
    assert bool((curve[:, 13:].diff(dim=1) < 0).all())                # then it falls
    morf = pixel_flipping(model, x, contributions(model, x), steps=16)
    assert bool((morf[:, 1] < morf[:, 0]).all())                      # MoRF falls at once


def test_lerf_with_mixed_signs_is_the_upper_envelope() -> None:
    # With negative evidence, LeRF of the exact attribution first rises; it is the largest
    # score reachable after removing k features, so it lies above every other order.
    model = linear()
    x = torch.randn(16, 64, dtype=torch.float64)
    lerf = pixel_flipping(model, x, contributions(model, x), steps=16, order="lerf")
    for seed in range(3):
        other = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed),
                            dtype=torch.float64)
        curve = pixel_flipping(model, x, other, steps=16, order="lerf")
        assert bool((lerf >= curve - 1e-12).all())


def reference_loop(model: nn.Module, x: Tensor, a: Tensor, target: Tensor, steps: int,
                   patch: int, fill: Tensor) -> Tensor:
    """Step-by-step oracle: sum relevance per patch, flip whole patches (all channels)."""
    n, w = x.shape[0], x.shape[3]
    rel = a.sum(1, keepdim=True)
    patch_rel = nn.functional.avg_pool2d(rel, patch, ceil_mode=True) * patch * patch
    order = torch.sort(patch_rel.reshape(n, -1), dim=1, descending=True, stable=True).indices
    per = order.shape[1] // steps
    cols = -(-w // patch)
    xp = x.clone()
    scores = [model(xp).gather(1, target[:, None])[:, 0]]
    for k in range(steps):
        for i in range(n):
            for p in order[i, k * per:(k + 1) * per].tolist():
                r, q = divmod(p, cols)
                rows, colsl = slice(r * patch, (r + 1) * patch), slice(q * patch, (q + 1) * patch)
                xp[i, :, rows, colsl] = fill[i, :, rows, colsl]
        scores.append(model(xp).gather(1, target[:, None])[:, 0])
    return torch.stack(scores, 1).detach()


@pytest.mark.parametrize(("patch", "steps", "fill"), [(1, 36, 0.0), (3, 8, "mean"),
                                                      (4, 9, "blur"), (2, 12, "uniform")])
def test_matches_step_by_step_loop_with_patches_and_channels(patch: int, steps: int,
                                                             fill: str | float) -> None:
    from helpers import small_cnn
    from lumos.metrics.fills import fill_image

    model = small_cnn(in_channels=3)
    x = torch.rand(5, 3, 12, 12, dtype=torch.float64)
    x[:, :, :4] = 0.0                                    # some pixels already equal the fill
    a = torch.randn_like(x)
    t = torch.tensor([0, 3, 5, 7, 9])
    image = fill_image(x, fill, seed=0)
    full = torch.full_like(x, image) if isinstance(image, float) else image
    with untouched(model):
        curve = pixel_flipping(model, x, a, t, steps=steps, patch=patch, fill=fill,
                               batch_size=7)
    expected = reference_loop(model, x, a, t, steps, patch, full)
    torch.testing.assert_close(curve, expected, rtol=0, atol=1e-10)


def test_patch_index_counts_edge_patches() -> None:
    index, n = patch_index((5, 7), 3)
    assert n == 2 * 3
    assert index.reshape(5, 7)[4, 6].item() == 5 and index.reshape(5, 7)[0, 3].item() == 1


def test_channel_summed_attribution_is_accepted() -> None:
    from helpers import small_cnn

    model = small_cnn(in_channels=3)
    x = torch.rand(2, 3, 12, 12, dtype=torch.float64)
    a = torch.randn_like(x)
    full = pixel_flipping(model, x, a, 1, steps=12)
    summed = pixel_flipping(model, x, a.sum(1, keepdim=True), 1, steps=12)
    torch.testing.assert_close(full, summed)


def test_softmax_score_and_insertion_deletion() -> None:
    from helpers import small_cnn

    model = small_cnn()
    x = torch.rand(4, 1, 12, 12, dtype=torch.float64)
    a = torch.randn_like(x)
    curve = pixel_flipping(model, x, a, 2, steps=6, score="softmax")
    prob = model(x).softmax(1)[:, 2].detach()
    torch.testing.assert_close(curve[:, 0], prob)
    result = insertion_deletion(model, x, a, 2, steps=6, baseline=0.0)
    torch.testing.assert_close(result.deletion_curve, curve)
    assert torch.allclose(result.insertion_curve[:, -1], prob)
    torch.testing.assert_close(result.deletion, auc(curve))
    assert result.insertion.shape == (4,)


def test_aopc_and_auc_formulas() -> None:
    curve = torch.tensor([[1.0, 0.5, 0.0], [2.0, 2.0, 2.0]])
    torch.testing.assert_close(aopc(curve), torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(auc(curve), torch.tensor([0.5, 2.0]))


# ---- bad input: one clear error each -------------------------------------------------------

def test_attribution_shape_mismatch() -> None:
    model = linear()
    x = torch.randn(2, 64, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"attribution has shape \(2, 63\) but the input"):
        pixel_flipping(model, x, torch.randn(2, 63, dtype=torch.float64), steps=4)


def test_steps_larger_than_patches() -> None:
    from helpers import small_cnn

    x = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"steps=17 is larger than the number of patches \(16"):
        pixel_flipping(small_cnn(), x, torch.randn_like(x), 0, steps=17, patch=3)


def test_nan_attribution() -> None:
    model = linear()
    x = torch.randn(3, 64, dtype=torch.float64)
    a = torch.randn_like(x)
    a[1, 5] = float("nan")
    with untouched(model), pytest.raises(ValueError, match=r"attribution contains NaN.*\[1\]"):
        pixel_flipping(model, x, a, steps=4)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"order": "up"}, "order must be one of"),
    ({"fill": "zero"}, "fill must be a number"),
    ({"score": "prob"}, "score must be one of"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"patch": 20}, "patch=20 is larger"),
])
def test_bad_options(kwargs: dict[str, object], message: str) -> None:
    from helpers import small_cnn

    x = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        pixel_flipping(small_cnn(), x, torch.randn_like(x), 0, **kwargs)  # type: ignore[arg-type]


def test_target_out_of_range() -> None:
    from helpers import small_cnn

    x = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    with pytest.raises(IndexError, match="target 12 is out of range"):
        pixel_flipping(small_cnn(), x, torch.randn_like(x), 12, steps=4)


def test_removal_steps_balanced() -> None:
    x = torch.rand(1, 1, 4, 5)
    step, steps = removal_steps(x, torch.randn_like(x), steps=6)
    assert steps == 6
    assert torch.bincount(step[0]).tolist() == [4, 3, 3, 4, 3, 3]


def test_training_mode_warns_and_is_left_alone() -> None:
    model = linear().train()
    x = torch.randn(2, 64, dtype=torch.float64)
    with untouched(model), pytest.warns(UserWarning, match="training mode"):
        pixel_flipping(model, x, torch.randn_like(x), steps=4)
    assert model.training
