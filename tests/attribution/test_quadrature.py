"""Quadrature rules: closed-form integrals, exactness orders, and Captum's nodes."""

from __future__ import annotations

import math

import pytest
import torch

from lumos.attribution import quadrature
from lumos.attribution.quadrature import METHODS, rule


def integrate(method: str, n: int, fn) -> float:
    alphas, weights = rule(method, n)
    return float((weights * fn(alphas)).sum())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_weights_sum_to_one_and_nodes_in_unit_interval(method: str, n: int) -> None:
    alphas, weights = rule(method, n)
    assert alphas.dtype == weights.dtype == torch.float64
    assert alphas.shape == weights.shape == (n,)
    assert abs(float(weights.sum()) - 1.0) < 1e-14
    assert bool((alphas >= 0).all() and (alphas <= 1).all())
    assert bool((alphas.diff() > 0).all())


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 16])
def test_gauss_legendre_is_exact_up_to_degree_2n_minus_1(n: int) -> None:
    for degree in range(2 * n):
        assert integrate("gauss_legendre", n, lambda a, d=degree: a**d) == pytest.approx(
            1.0 / (degree + 1), abs=1e-14)
    # and not beyond: degree 2n has the known error (n!)^4 / ((2n + 1) ((2n)!)^2) on [0, 1]
    if n <= 5:
        error = 1 / (2 * n + 1) - integrate("gauss_legendre", n, lambda a: a ** (2 * n))
        expected = math.factorial(n) ** 4 / ((2 * n + 1) * math.factorial(2 * n) ** 2)
        assert error == pytest.approx(expected, rel=1e-6)


def test_closed_form_integrals_converge_at_the_rules_order() -> None:
    exact = math.e - 1.0  # integral of exp over [0, 1]
    err = {m: abs(integrate(m, 64, torch.exp) - exact) for m in METHODS}
    assert err["gauss_legendre"] < 1e-14
    # left/right: first order, error ~ (e - 1) / (2n); middle/trapezoid: second order
    assert err["riemann_left"] == pytest.approx((math.e - 1) / 128, rel=0.02)
    assert err["riemann_right"] == pytest.approx((math.e - 1) / 128, rel=0.02)
    assert err["riemann_middle"] == pytest.approx((math.e - 1) / (24 * 64**2), rel=0.02)
    assert err["riemann_trapezoid"] == pytest.approx((math.e - 1) / (12 * 63**2), rel=0.02)
    assert integrate("gauss_legendre", 20, lambda a: torch.sin(math.pi * a)) == pytest.approx(
        2 / math.pi, abs=1e-14)


def test_exactness_for_low_degrees() -> None:
    linear = lambda a: 3 * a + 1  # integral 2.5
    for method in ("riemann_middle", "riemann_trapezoid", "gauss_legendre"):
        assert integrate(method, 5, linear) == pytest.approx(2.5, abs=1e-14)
    for method in METHODS:
        assert integrate(method, 4, lambda a: torch.ones_like(a)) == pytest.approx(1.0, abs=1e-15)


def _captum_rule(method: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from captum.attr._utils.approximation_methods import approximation_parameters

    name = "gausslegendre" if method == "gauss_legendre" else method
    step_sizes, alphas = approximation_parameters(name)
    return (torch.tensor(alphas(n), dtype=torch.float64),
            torch.tensor(step_sizes(n), dtype=torch.float64))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [2, 9, 50])
def test_same_nodes_and_weights_as_captum(method: str, n: int) -> None:
    alphas, weights = rule(method, n)
    c_alphas, c_weights = _captum_rule(method, n)
    assert torch.allclose(alphas, c_alphas, rtol=0, atol=1e-7)  # Captum's linspace is float32
    if method == "riemann_trapezoid":  # Captum's trapezoid weights sum to (n - 1) / n
        c_weights = c_weights * n / (n - 1)
    assert torch.allclose(weights, c_weights, rtol=1e-12, atol=0)


def test_names_and_step_errors() -> None:
    assert quadrature.canonical_method("gausslegendre") == "gauss_legendre"
    with pytest.raises(ValueError, match="unknown integration method 'simpson'"):
        rule("simpson", 5)
    with pytest.raises(ValueError, match="n_steps must be at least 1"):
        rule("gauss_legendre", 0)
    with pytest.raises(ValueError, match="trapezoid rule needs n_steps >= 2"):
        rule("riemann_trapezoid", 1)
    with pytest.raises(TypeError, match="n_steps must be an int"):
        rule("riemann_left", 2.5)  # type: ignore[arg-type]
    alphas, weights = rule("riemann_left", 1)
    assert alphas.tolist() == [0.0] and weights.tolist() == [1.0]
