"""The gradient family against Captum and against its definitions."""

from __future__ import annotations

import torch

import lumos
from helpers import small_cnn


def test_gradient_and_input_x_gradient_equal_captum() -> None:
    from captum.attr import InputXGradient, Saliency

    model = small_cnn()
    x = torch.rand(3, 1, 12, 12, dtype=torch.float64)
    grad = lumos.Gradient(model).attribute(x, target=[1, 2, 3])
    assert torch.allclose(grad, Saliency(model).attribute(x, target=[1, 2, 3], abs=False),
                          rtol=0, atol=1e-14)
    absolute = lumos.Gradient(model, absolute=True).attribute(x, target=1)
    assert torch.allclose(absolute, Saliency(model).attribute(x, target=1), rtol=0, atol=1e-14)
    ixg = lumos.InputXGradient(model).explain(x, target=4)
    assert torch.allclose(ixg.attribution, InputXGradient(model).attribute(x, target=4),
                          rtol=0, atol=1e-14)
    with torch.no_grad():
        assert torch.allclose(ixg.output, model(x)[:, 4])
    assert ixg.method == "input_x_gradient" and ixg.target.tolist() == [4, 4, 4]


def test_smoothgrad_averages_gradients_of_seeded_noisy_copies() -> None:
    model = small_cnn()
    x = torch.rand(2, 1, 12, 12, dtype=torch.float64)
    sg = lumos.SmoothGrad(model, noise_level=0.2, n_samples=4, seed=5)
    attr = sg.attribute(x, target=0)
    assert torch.equal(attr, sg.attribute(x, target=0))  # seeded
    gen = torch.Generator().manual_seed(5)
    spread = (x.flatten(1).max(1).values - x.flatten(1).min(1).values).view(-1, 1, 1, 1)
    expected = torch.zeros_like(x)
    for _ in range(4):
        noisy = x + 0.2 * spread * torch.randn(x.shape, generator=gen, dtype=torch.float64)
        expected += lumos.Gradient(model).attribute(noisy, target=0) / 4
    assert torch.allclose(attr, expected, atol=1e-14)
    plain = lumos.SmoothGrad(model, noise_level=0.0, n_samples=2).attribute(x, target=0)
    assert torch.allclose(plain, lumos.Gradient(model).attribute(x, target=0), atol=1e-14)
    times_x = lumos.SmoothGrad(model, noise_level=0.0, n_samples=1, multiply_by_inputs=True)
    assert torch.allclose(times_x.attribute(x, target=0),
                          lumos.InputXGradient(model).attribute(x, target=0), atol=1e-14)
