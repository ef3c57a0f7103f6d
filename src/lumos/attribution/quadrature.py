"""Quadrature rules on [0, 1] for path integrals: each method is a pair (alphas, weights).

Integrated Gradients integrates ``grad f(x' + a (x - x'))`` over ``a`` in ``[0, 1]``; a rule
replaces the integral by ``sum_k weights[k] * integrand(alphas[k])``. The method names are
Captum's, so code written for ``captum.attr.IntegratedGradients`` keeps its meaning:

- ``riemann_left``: ``a_k = k / n``, ``w_k = 1 / n`` (k = 0..n-1);
- ``riemann_right``: ``a_k = (k + 1) / n``, ``w_k = 1 / n``;
- ``riemann_middle``: ``a_k = (k + 1/2) / n``, ``w_k = 1 / n``;
- ``riemann_trapezoid``: ``a_k = k / (n - 1)`` (both end points), weights ``1 / (n - 1)``
  halved at the two ends; needs ``n >= 2``. Captum's weights here are ``1 / n`` (halved at the
  ends), which sum to ``(n - 1) / n`` rather than 1; lumos uses the trapezoid rule itself, so
  its result is Captum's times ``n / (n - 1)`` and it integrates constants exactly;
- ``gauss_legendre`` (also spelled ``gausslegendre``, Captum's name): the n-point
  Gauss-Legendre rule mapped from ``[-1, 1]`` to ``[0, 1]``; exact for polynomials of degree
  ``2n - 1``.

Nodes and weights are computed in float64 (Captum rounds them to float32); the caller casts
them to the input's dtype.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

METHODS: tuple[str, ...] = ("riemann_left", "riemann_right", "riemann_middle",
                            "riemann_trapezoid", "gauss_legendre")
_ALIASES = {"gausslegendre": "gauss_legendre"}


def canonical_method(method: str) -> str:
    """The lumos name of ``method`` (accepting Captum's ``gausslegendre``); raise if unknown."""
    if not isinstance(method, str) or _ALIASES.get(method, method) not in METHODS:
        raise ValueError(f"unknown integration method {method!r}; choose one of "
                         f"{', '.join(METHODS)}")
    return _ALIASES.get(method, method)


def check_steps(n_steps: object, method: str) -> int:
    """Return ``n_steps`` as an int if ``method`` can use it; raise a clear error otherwise."""
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)):
        raise TypeError(f"n_steps must be an int, got {type(n_steps).__name__}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}")
    if method == "riemann_trapezoid" and n_steps < 2:
        raise ValueError("the trapezoid rule needs n_steps >= 2 (both end points), got 1")
    return int(n_steps)


def rule(method: str, n_steps: int) -> tuple[Tensor, Tensor]:
    """Nodes and weights of ``method`` with ``n_steps`` points on ``[0, 1]``, float64, CPU.

    Returns
    -------
    alphas:
        ``(n_steps,)`` positions along the path, increasing.
    weights:
        ``(n_steps,)`` quadrature weights; they sum to 1 for every method.
    """
    method = canonical_method(method)
    n = check_steps(n_steps, method)
    k = np.arange(n, dtype=np.float64)
    if method == "gauss_legendre":
        nodes, w = np.polynomial.legendre.leggauss(n)
        alphas, weights = 0.5 * (nodes + 1.0), 0.5 * w
    elif method == "riemann_trapezoid":
        alphas = k / (n - 1)
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] *= 0.5
    else:
        shift = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
        alphas = (k + shift) / n
        weights = np.full(n, 1.0 / n)
    return torch.from_numpy(alphas.copy()), torch.from_numpy(weights.copy())
