"""Baselines: every accepted form resolves to tensors shaped like the input."""

from __future__ import annotations

import pytest
import torch

from lumos.attribution.baselines import Blur, Sampled, Uniform, resolve


def test_numbers_tensors_and_callables() -> None:
    x = torch.rand(3, 2, 5, 5, dtype=torch.float64)
    assert torch.equal(resolve(None, x)[0], torch.zeros_like(x))
    assert torch.equal(resolve("zero", x)[0], torch.zeros_like(x))
    assert torch.equal(resolve(0.5, x)[0], torch.full_like(x, 0.5))
    means = torch.tensor([0.1, 0.2]).view(2, 1, 1)  # float32, broadcast per channel
    out = resolve(means, x)[0]
    assert out.shape == x.shape and out.dtype == x.dtype
    assert float(out[1, 1, 3, 3]) == pytest.approx(0.2)
    per_sample = torch.rand_like(x)
    assert torch.equal(resolve(per_sample, x)[0], per_sample)
    assert torch.equal(resolve(lambda t: t * 0.5, x)[0], x * 0.5)
    assert len(resolve([0.0, "blur", per_sample], x)) == 3


def test_blur_is_a_normalised_gaussian_over_spatial_dims() -> None:
    x = torch.zeros(1, 1, 21, 21, dtype=torch.float64)
    x[0, 0, 10, 10] = 1.0
    out = Blur(sigma=2.0)(x)
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-12)  # mass kept away from the edges
    g = torch.exp(-0.5 * (torch.arange(-3, 4, dtype=torch.float64) / 2.0) ** 2)
    g1 = torch.exp(-0.5 * (torch.arange(-6, 7, dtype=torch.float64) / 2.0) ** 2)
    assert float(out[0, 0, 10, 13] / out[0, 0, 10, 10]) == pytest.approx(float(g[6] / g[3]))
    assert float(out[0, 0, 10, 10]) == pytest.approx(float((1 / g1.sum()) ** 2))
    seq = torch.rand(2, 3, 30)
    assert resolve("blur", seq)[0].shape == seq.shape
    with pytest.raises(ValueError, match="blur baseline needs spatial dimensions"):
        resolve("blur", torch.rand(2, 5))


def test_uniform_is_seeded_and_within_each_samples_range() -> None:
    x = torch.stack([torch.linspace(0, 1, 50), torch.linspace(-3, -2, 50)]).double()
    a, b = Uniform(seed=1)(x), Uniform(seed=1)(x)
    assert torch.equal(a, b) and not torch.equal(a, Uniform(seed=2)(x))
    assert float(a[0].min()) >= 0 and float(a[0].max()) <= 1
    assert float(a[1].min()) >= -3 and float(a[1].max()) <= -2
    assert resolve("uniform", x)[0].shape == x.shape


def test_sampled_draws_k_seeded_baselines_per_sample() -> None:
    ref = torch.arange(10, dtype=torch.float64).view(10, 1).expand(10, 4).contiguous()
    x = torch.rand(3, 4, dtype=torch.float64)
    draws = resolve(Sampled(ref, k=5, seed=3), x)
    again = resolve(Sampled(ref, k=5, seed=3), x)
    assert len(draws) == 5 and all(torch.equal(d, e) for d, e in zip(draws, again, strict=True))
    assert all(d.shape == x.shape for d in draws)
    assert all(bool((d == d[:, :1]).all()) for d in draws)  # whole reference rows
    with pytest.raises(ValueError, match="reference rows have shape"):
        resolve(Sampled(torch.rand(4, 3)), x)


def test_bad_baselines_get_one_clear_error() -> None:
    x = torch.rand(3, 1, 4, 4)
    with pytest.raises(ValueError, match=r"baselines has shape \(2, 1, 4, 4\), which does not "
                                         r"broadcast to the inputs' shape \(3, 1, 4, 4\)"):
        resolve(torch.rand(2, 1, 4, 4), x)
    with pytest.raises(ValueError, match="unknown baseline 'black'"):
        resolve("black", x)
    with pytest.raises(ValueError, match="baselines contains NaN"):
        resolve(torch.tensor(float("nan")), x)
    with pytest.raises(ValueError, match="empty list"):
        resolve([], x)
    with pytest.raises(TypeError, match="baseline callable must return a tensor"):
        resolve(lambda t: 0.0, x)
