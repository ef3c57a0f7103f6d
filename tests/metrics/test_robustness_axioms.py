"""Infidelity and max-sensitivity against Captum, similarity against scipy/skimage, axioms."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from helpers import small_cnn, small_mlp, untouched
from lumos.explanation import Explanation
from lumos.metrics.axioms import completeness_error, conservation, sparseness
from lumos.metrics.robustness import infidelity, infidelity_noise, max_sensitivity
from lumos.metrics.similarity import spearman, ssim


def input_x_gradient(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    with torch.enable_grad():
        x = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return (grad * x).detach()


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_equals_captum_with_the_same_noise(normalize: bool) -> None:
    from captum.metrics import infidelity as captum_infidelity

    model = small_cnn()
    x = torch.rand(3, 1, 12, 12, dtype=torch.float64)
    t = torch.tensor([1, 4, 7])
    a = input_x_gradient(model, x, t)
    noise = infidelity_noise(x, 8, 0.1, seed=3)
    flat = noise.transpose(0, 1).reshape(-1, *x.shape[1:])   # Captum: sample-major

    def perturb(inputs: Tensor) -> tuple[Tensor, Tensor]:
        assert inputs.shape[0] == flat.shape[0]
        return flat, inputs - flat

    with untouched(model):
        ours = infidelity(model, x, a, t, n_perturb=8, std=0.1, seed=3, normalize=normalize,
                          batch_size=5)
    theirs = captum_infidelity(model, perturb, x, a, target=t, n_perturb_samples=8,
                               normalize=normalize)
    torch.testing.assert_close(ours, theirs, rtol=1e-8, atol=1e-12)


def test_infidelity_of_exact_linear_attribution_is_zero() -> None:
    model = nn.Linear(10, 3).double()
    x = torch.randn(4, 10, dtype=torch.float64)
    exact = model.weight[2].detach() * torch.ones_like(x)   # gradient: I . w = f(x) - f(x - I)
    assert infidelity(model, x, exact, 2, normalize=False).abs().max() < 1e-20
    assert infidelity(model, x, torch.randn_like(x), 2).min() > 1e-4


def test_max_sensitivity_equals_the_formula() -> None:
    # Yeh et al. / Captum's sensitivity_max: max_k |e(x + u_k) - e(x)|_F / |e(x)|_F,
    # u_k uniform in [-r, r]; the draws come from the CPU generator, one (N, ...) draw per k.
    model = small_mlp()
    x = torch.randn(4, 20, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 3])
    explain = lambda inputs, target: input_x_gradient(model, inputs, target)
    gen = torch.Generator().manual_seed(5)
    noise = [torch.rand(x.shape, generator=gen, dtype=torch.float64) * 0.1 - 0.05
             for _ in range(6)]
    base = explain(x, t)
    expected = torch.stack([(explain(x + u, t) - base).norm(dim=1) / base.norm(dim=1)
                            for u in noise]).max(0).values
    with untouched(model):
        ours = max_sensitivity(model, x, None, t, explain=explain, lower_bound=0.05,
                               n_samples=6, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ours, expected)
    assert bool((ours > 0).all())
    ours_again = max_sensitivity(model, x, base, t, explain=explain, lower_bound=0.05,
                                 n_samples=6, generator=torch.Generator().manual_seed(5),
                                 explain_batch=8)
    torch.testing.assert_close(ours_again, ours)


def test_similarities_equal_scipy_and_skimage() -> None:
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    a = torch.randn(3, 1, 16, 16, dtype=torch.float64)
    a[a < 0.3] = 0.0                                       # many ties
    b = 0.5 * a + torch.randn_like(a).clamp_min(0.2)
    rho = spearman(a, b)
    for i in range(3):
        ref = spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
        assert abs(rho[i].item() - ref) < 1e-12
    value = ssim(a, b)
    for i in range(3):
        x, y = (m[i, 0] - m[i, 0].min() for m in (a, b))
        ref = structural_similarity((x / x.max()).numpy(), (y / y.max()).numpy(),
                                    gaussian_weights=True, sigma=1.5, data_range=1.0,
                                    use_sample_covariance=False)
        assert abs(value[i].item() - ref) < 1e-10
    torch.testing.assert_close(ssim(a, a), torch.ones(3, dtype=torch.float64))


def test_completeness_error_of_exact_attribution() -> None:
    model = nn.Linear(10, 3).double()
    x = torch.randn(4, 10, dtype=torch.float64)
    base = torch.randn(1, 10, dtype=torch.float64)
    exact = model.weight[1].detach() * (x - base)
    assert completeness_error(model, x, exact, 1, baselines=base).max() < 1e-12
    gap = completeness_error(model, x, 2 * exact, 1, baselines=base, relative=False)
    expected = (model(x) - model(base)).detach()[:, 1].abs()
    torch.testing.assert_close(gap, expected)


def test_conservation_gaps() -> None:
    exp = Explanation(attribution=torch.full((2, 4), 0.5), output=torch.tensor([2.0, 4.0]),
                      method="lrp", layers={"output": torch.tensor([2.0, 4.0]),
                                            "fc": torch.tensor([2.0, 3.0]),
                                            "input": torch.tensor([2.0, 2.0])})
    gaps = conservation(exp)
    assert list(gaps) == ["output", "fc", "input"]
    torch.testing.assert_close(gaps["fc"], torch.tensor([0.0, -0.25]))
    torch.testing.assert_close(gaps["input"], torch.tensor([0.0, -0.5]))
    with pytest.raises(TypeError, match="needs an Explanation"):
        conservation(torch.ones(2))  # type: ignore[arg-type]


def test_sparseness_gini() -> None:
    one_hot = torch.zeros(1, 1, 4, 4)
    one_hot[0, 0, 1, 2] = -3.0
    flat = torch.ones(1, 1, 4, 4)
    values = sparseness(torch.cat([one_hot, flat, torch.zeros(1, 1, 4, 4)]))
    torch.testing.assert_close(values, torch.tensor([15 / 16, 0.0, 0.0]))
