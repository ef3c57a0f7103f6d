"""The map-error estimate of adaptive IG against integrands whose integral is known exactly."""

from __future__ import annotations

import numpy as np
import torch

from lumos.attribution.panels import PathNodes, assess, error_dof, statistical_factor


def gaussian_panels(rng: np.random.Generator, n_panels: int, dim: int, rank: int) -> np.ndarray:
    """Independent panel vectors spread over a random ``rank``-dimensional subspace,
    each with its own scale."""
    basis = rng.standard_normal((dim, rank)) / np.sqrt(dim)
    scales = rng.uniform(0.5, 2.0, n_panels)[:, None]
    return scales * (rng.standard_normal((n_panels, rank)) @ basis.T)


def test_dof_counts_the_directions_the_panels_spread_over_not_the_entries() -> None:
    rng = np.random.default_rng(0)
    for rank in (5, 50, 400):
        v = gaussian_panels(rng, 60, 2000, rank)
        dof = rank / (1 + rank / 2000)  # (tr C)^2 / tr C^2 of a random (not orthogonal) basis
        assert 0.8 * dof <= error_dof(v @ v.T) <= 1.2 * dof
    aligned = np.outer(rng.uniform(1, 2, 10), rng.standard_normal(300))
    assert abs(error_dof(aligned @ aligned.T) - 1.0) < 1e-9  # one direction: one dof
    assert error_dof(np.ones((1, 1))) == 1.0


def test_margin_shrinks_with_dof_and_with_the_panels_that_measure_it() -> None:
    assert statistical_factor(1.0, 30.0) == 1.0
    assert statistical_factor(400.0, 30.0) < statistical_factor(50.0, 30.0) < 1.0
    assert statistical_factor(400.0, 30.0) < statistical_factor(400.0, 4.0)
    assert statistical_factor(1e12, 1e6) > 3**-0.5 > statistical_factor(1e12, 1e6) - 1e-5
    assert statistical_factor(400.0, 1.0) == 1.0  # one panel cannot measure its dof


def jump_path(rng: np.random.Generator, dim: int, rank: int, jumps: int, n_panels: int,
              ) -> tuple[PathNodes, torch.Tensor]:
    """A gradient that is piecewise constant along the path (ReLU-like units switching at
    random positions), sampled on ``n_panels`` equal panels, and its exact integral."""
    basis = rng.standard_normal((dim, rank)) / np.sqrt(dim)
    where = np.sort(rng.uniform(0, 1, jumps))
    step = rng.standard_normal((jumps, rank)) @ basis.T
    start = rng.standard_normal(dim)
    alpha = np.linspace(0, 1, 2 * n_panels + 1)
    passed = where[None, :] <= alpha[:, None]
    grads = start + passed.astype(float) @ step
    exact = start + (1 - where) @ step
    h = grads.sum(1)  # scalar integrand with x - x' = 1
    f = alpha * start.sum() + (np.maximum(alpha[:, None] - where[None, :], 0)
                               @ step.sum(1))
    nodes = PathNodes(alpha, f, h, [torch.from_numpy(g) for g in grads])
    return nodes, torch.from_numpy(exact)


def test_estimate_bounds_the_true_map_error_of_a_random_jump_process() -> None:
    """Many small jumps (a deep ReLU net's gradient along the path): the realised error is at
    most the estimate in >= 95% of paths, and the estimate is not far above it."""
    rng = np.random.default_rng(1)
    ratios = []
    for trial in range(200):
        rank = (4, 30, 200)[trial % 3]
        nodes, exact = jump_path(rng, 400, rank, jumps=3000, n_panels=int(rng.integers(8, 40)))
        state = assess([nodes], [torch.ones(400, dtype=torch.float64)])
        ratios.append(float((state.attribution - exact).norm()) / state.error_abs)
    ratio = np.array(ratios)
    assert (ratio <= 1).mean() >= 0.95 and ratio.max() <= 1.5, np.sort(ratio)[-10:]
    assert np.median(ratio) >= 0.7, np.median(ratio)  # the margin costs little


def test_estimate_bounds_the_error_of_a_smooth_integrand() -> None:
    """Gradient quadratic along the path: the panels' V all point one way, the error is
    sum V / 3, and the coherent term of the estimate covers it."""
    direction = torch.randn(50, dtype=torch.float64)
    alpha = np.linspace(0, 1, 17)
    grads = [float(a) ** 2 * direction for a in alpha]
    h = np.array([float(g.sum()) for g in grads])
    nodes = PathNodes(alpha, alpha**3 / 3 * float(direction.sum()), h, grads)
    state = assess([nodes], [torch.ones(50, dtype=torch.float64)])
    true = float((state.attribution - direction / 3).norm())
    assert true <= state.error_abs <= 2 * true


def test_estimate_survives_tiny_float32_gradients() -> None:
    """Gradients of 1e-25 (a saturated score): their squares underflow float32, the estimate
    must not fall to 0 with them."""
    rng = np.random.default_rng(2)
    nodes, _ = jump_path(rng, 400, 30, jumps=3000, n_panels=12)
    tiny = PathNodes(nodes.alpha, nodes.f * 1e-25, nodes.h * 1e-25,
                     [(g * 1e-25).float() for g in nodes.grads])
    big = assess([nodes], [torch.ones(400, dtype=torch.float64)])
    small = assess([tiny], [torch.ones(400)])
    assert small.error > 0 and abs(small.error / big.error - 1) < 1e-3
