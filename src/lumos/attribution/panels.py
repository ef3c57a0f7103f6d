"""Nested trapezoid panels along one path, and the error estimate of the attribution map.

A path is cut into panels ``[a, b]``, each evaluated at its two ends and its midpoint ``m``, so
two nested rules come with every panel for free: the one-panel trapezoid
``T1 = (b - a) (g_a + g_b) / 2`` and the two-half-panel trapezoid
``T2 = (b - a) (g_a + 2 g_m + g_b) / 4``. The attribution uses ``T2``; the *vector*
``V = T1 - T2 = (b - a) (g_a - 2 g_m + g_b) / 4`` (times ``x - x'``) measures how far the
gradient is from linear on the panel, pixel by pixel.

How ``V`` relates to the error of ``T2`` depends on the integrand:

- smooth: the error of ``T2`` is ``V / 3`` (Richardson), on every panel with the same sign;
- one kink or jump of the gradient inside the panel (ReLU networks): ``|error| <= |V|``;
- many small jumps (a deep ReLU network: a random walk in ``a``): the error is independent
  of ``V`` with ``E|error|^2 = E|V|^2 / 3``.

The estimate therefore is ``c * max(|sum_p V_p|, sqrt(sum_p |V_p|^2))``: the first term keeps
the coherent (smooth) errors, the second the incoherent ones, and ``c`` goes from 1 when one
entry holds the whole estimate (one jump of one pixel) to ``1 / sqrt(3)`` (plus a margin) when
many independent contributions share it. How many share it is counted twice, like
``n = (sum w)^2 / sum w^2`` over weights ``w``: over all entries of all panels' ``V`` (pixel by
pixel, ``w = V^2``) and over the panels (``w = |V_p|^2``). The realised error concentrates like
``1 / sqrt(n)`` around its expectation, so the margin shrinks with both: on a random
ReLU6/Softplus CNN (``n`` in the thousands over entries, 20-25 over panels) true / ``sqrt(sum
|V_p|^2)`` stays within 0.58-0.63 against the 0.577 of the model, on the mnist CNN (60-400
entries, sparse digits) it spreads over 0.38-0.73; ``MARGIN`` and ``PANEL_MARGIN`` cover both.
Finally the scalar integrand is known exactly on every panel (``f(b) - f(a)``), so the exact
scalar errors of ``T1`` and ``T2`` give one honest projection of the vector error; when the
``T2`` error seen there is larger, relative to ``V``, than ``c`` assumes (a bump between nodes
that ``V`` cannot see), ``c`` is raised to match it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

#: Margin of the error factor: ``c = max(1/sqrt(3) * sqrt(1 + MARGIN / sqrt(n_eff)), ...)``
#: (``n_eff`` over entries; 12 keeps every map of both bench models within its estimate).
MARGIN = 12.0
#: Weight of the exact scalar check in the error factor.
SCALAR_WEIGHT = 0.8
#: Margin for the number of panels sharing the estimate: the error is a sum over panels, and
#: how far a panel's error strays from its expectation depends on its own jumps, not only on
#: how many pixels they move (0.3: every map of the random bench CNN within its tolerance).
PANEL_MARGIN = 0.3


@dataclass
class PathNodes:
    """Sorted nodes of one path: position, score, scalar integrand and gradient at each.

    Nodes ``0, 2, 4, ...`` are panel ends and nodes ``1, 3, ...`` panel midpoints.
    """

    alpha: np.ndarray
    f: np.ndarray
    h: np.ndarray
    grads: list[Tensor] = field(default_factory=list)

    def insert(self, alpha: np.ndarray, f: np.ndarray, h: np.ndarray,
               grads: list[Tensor]) -> None:
        """Add nodes (any order); keeps everything sorted by position."""
        order = np.argsort(np.concatenate([self.alpha, alpha]), kind="stable")
        self.alpha = np.concatenate([self.alpha, alpha])[order]
        self.f = np.concatenate([self.f, f])[order]
        self.h = np.concatenate([self.h, h])[order]
        merged = self.grads + grads
        self.grads = [merged[i] for i in order]

    @property
    def lefts(self) -> np.ndarray:
        return self.alpha[0:-1:2]

    @property
    def widths(self) -> np.ndarray:
        return self.alpha[2::2] - self.alpha[0:-2:2]

    def weights(self) -> np.ndarray:
        """Node weights of ``T2`` (they sum to 1)."""
        w = np.zeros_like(self.alpha)
        quarter = 0.25 * self.widths
        w[0:-2:2] += quarter
        w[1::2] += 2 * quarter
        w[2::2] += quarter
        return w

    def scalar_errors(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact errors of ``T2`` and ``T1`` per panel for the scalar integrand."""
        a, m, b = self.h[0:-2:2], self.h[1::2], self.h[2::2]
        exact = self.f[2::2] - self.f[0:-2:2]
        width = self.widths
        return 0.25 * width * (a + 2 * m + b) - exact, 0.5 * width * (a + b) - exact

    def integral_and_v(self, scale: Tensor) -> tuple[Tensor, Tensor]:
        """``scale * T2`` over the whole path and ``scale * V`` per panel ``(n_panels, ...)``."""
        g = torch.stack(self.grads)
        flat = g.flatten(1)
        w = torch.as_tensor(self.weights(), device=g.device, dtype=g.dtype)
        total = (w @ flat).view(g.shape[1:]) * scale
        quarter = torch.as_tensor(0.25 * self.widths, device=g.device, dtype=g.dtype)
        curv = flat[0:-2:2] - 2 * flat[1::2] + flat[2::2]
        v = (curv * quarter[:, None]).view(-1, *g.shape[1:]) * scale
        return total, v


@dataclass
class Assessment:
    """One sample's current attribution, its error estimate and its panels' indicators:
    ``panel_v`` each panel's ``|V|^2``, ``panel_gap`` its exact signed share of ``gap`` (they
    sum to it), ``n_eff`` how many entries of ``V`` share the estimate."""

    attribution: Tensor
    error: float
    error_abs: float
    gap: float
    panel_v: np.ndarray
    panel_gap: np.ndarray
    n_eff: float = 1.0

    def factor_after(self, growth: float) -> float:
        """The statistical part of ``c`` once the panels are ``growth`` times as many (and
        ``n_eff`` with them), without the scalar check: what refinement should plan for."""
        return statistical_factor(self.n_eff * growth, _panel_count(self.panel_v) * growth)


def _panel_count(v_sq: np.ndarray) -> float:
    total = float(v_sq.sum())
    return total**2 / max(float(np.sum(v_sq**2)), 1e-300) if total > 0 else 1.0


def statistical_factor(n_eff: float, n_panels: float) -> float:
    """``c`` from how many entries and how many panels share the estimate."""
    spread = MARGIN / np.sqrt(max(n_eff, 1.0)) + PANEL_MARGIN / np.sqrt(max(n_panels, 1.0))
    return float(min(1.0, np.sqrt((1.0 + spread) / 3.0)))


def error_factor(v_sq: np.ndarray, n_eff: float, e2: np.ndarray, e1: np.ndarray) -> float:
    """The factor ``c`` of the module docstring from panel ``|V|^2``, the entries' ``n_eff``
    and the scalar errors."""
    if float(v_sq.sum()) <= 0.0:
        return 1.0
    c = statistical_factor(n_eff, _panel_count(v_sq))
    seen = float(np.sum((e1 - e2) ** 2))
    if seen > 0.0:
        c = max(c, SCALAR_WEIGHT * float(np.sqrt(np.sum(e2**2) / seen)))
    return c


def assess(paths: list[PathNodes], scales: list[Tensor]) -> Assessment:
    """Attribution (mean over the sample's baselines) and its estimated relative L2 error.

    ``scales[k]`` is ``(x - x'_k) / K`` (or ``1 / K`` without multiplying by inputs).
    """
    attr: Tensor | None = None
    v_sum: Tensor | None = None
    v_sq, e2s, e1s = [], [], []
    v_4 = 0.0
    for nodes, scale in zip(paths, scales, strict=True):
        total, v = nodes.integral_and_v(scale)
        attr = total if attr is None else attr + total
        v_path = v.sum(0)
        v_sum = v_path if v_sum is None else v_sum + v_path
        v_sq.append(v.flatten(1).double().pow(2).sum(1).cpu().numpy())
        v_4 += float(v.double().pow(4).sum())
        e2, e1 = nodes.scalar_errors()
        e2s.append(e2)
        e1s.append(e1)
    assert attr is not None and v_sum is not None
    sq, e2_all, e1_all = np.concatenate(v_sq), np.concatenate(e2s), np.concatenate(e1s)
    spread = max(float(v_sum.double().norm()), float(np.sqrt(sq.sum())))
    n_eff = float(sq.sum()) ** 2 / max(v_4, 1e-300) if sq.sum() > 0 else 1.0
    err_abs = error_factor(sq, n_eff, e2_all, e1_all) * spread
    norm = float(attr.double().norm())
    err = err_abs / norm if norm > 0 else (0.0 if err_abs == 0 else float("inf"))
    gap = float(np.mean([e.sum() for e in e2s]))
    return Assessment(attr, err, err_abs, gap, sq, e2_all / len(paths), n_eff)
