"""Integrated Gradients (Sundararajan, Taly, Yan 2017) with fixed rules and adaptive refinement.

``attribute`` follows ``captum.attr.IntegratedGradients.attribute`` (same argument names,
defaults and method names), so switching is a change of import. ``explain`` adds what Captum
lacks: per-sample adaptive refinement until the estimated error of the attribution map and the
completeness gap are within a tolerance, and an :class:`~lumos.explanation.Explanation` that
reports both, the scores and the steps spent.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from lumos.attribution import quadrature
from lumos.attribution.adaptive import INITIAL_NODES, completeness_bound, integrate_adaptive
from lumos.attribution.baselines import BaselineLike, resolve
from lumos.attribution.checks import check_input
from lumos.attribution.gradient import Model, check_model
from lumos.attribution.paths import ChunkLike, Paths
from lumos.attribution.targets import Target, TargetLike
from lumos.explanation import Explanation


class ConvergenceWarning(UserWarning):
    """Some samples did not reach the requested tolerance (map error or completeness)."""


def integrate_fixed(paths: Paths, alphas: Tensor, weights: Tensor) -> Tensor:
    """``sum_k w_k grad f(x' + a_k (x - x'))`` per path, shape ``(P, ...)``.

    Rows are ordered step-major (all paths at ``alphas[0]``, then ``alphas[1]``, ...), as in
    Captum, and chunked by ``internal_batch_size``; the weighted gradients are summed as they
    arrive, so only one chunk of gradients lives at a time.
    """
    n_paths = paths.n_paths
    path_ids = torch.arange(n_paths).repeat(alphas.numel())
    alpha_rows = alphas.repeat_interleave(n_paths)
    weight_rows = weights.repeat_interleave(n_paths)
    total = torch.zeros_like(paths.start)
    for rows, _, grad in paths.evaluate(path_ids, alpha_rows):
        w = weight_rows[rows].to(device=grad.device, dtype=grad.dtype)
        weighted = grad * w.view(-1, *[1] * (grad.dim() - 1))
        total.index_add_(0, path_ids[rows].to(grad.device), weighted)
    return total


class IntegratedGradients:
    """Integrated Gradients of a model's target score.

    Parameters
    ----------
    model:
        A module or callable mapping a batch ``(N, ...)`` to outputs ``(N, C)`` (or one score
        per sample). It is only called, never modified; put it in ``eval()`` mode yourself.
    multiply_by_inputs:
        Multiply the path-averaged gradient by ``x - x'`` (IG proper). ``False`` returns the
        averaged gradient alone, as Captum's flag of the same name does.
    """

    method = "ig"

    def __init__(self, model: Model, multiply_by_inputs: bool = True) -> None:
        self.model = check_model(model)
        self.multiply_by_inputs = multiply_by_inputs

    def attribute(self, inputs: Tensor, baselines: BaselineLike = None,
                  target: TargetLike = None, n_steps: int = 50,
                  method: str = "gauss_legendre", internal_batch_size: ChunkLike = "auto",
                  return_convergence_delta: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """IG with a fixed quadrature rule; Captum's signature and meaning.

        Parameters
        ----------
        inputs:
            ``(N, ...)`` float tensor: images, sequences or tabular rows.
        baselines:
            See :mod:`lumos.attribution.baselines`; several baselines are averaged.
        target:
            See :mod:`lumos.attribution.targets`.
        n_steps:
            Number of points of the rule (per baseline).
        method:
            ``riemann_left``, ``riemann_right``, ``riemann_middle``, ``riemann_trapezoid`` or
            ``gauss_legendre`` (see :mod:`lumos.attribution.quadrature`).
        internal_batch_size:
            Rows per model call: ``"auto"`` (a memory budget, see :mod:`lumos.attribution.paths`),
            an int, or ``None`` (all at once, Captum's default). The result is the same up to
            the order of summation.
        return_convergence_delta:
            Also return ``sum(attribution) - (f(x) - f(x'))`` per sample.
        """
        _, paths, _ = self._prepare(inputs, baselines, target, internal_batch_size)
        method = quadrature.canonical_method(method)
        alphas, weights = quadrature.rule(method, n_steps)
        attr = self._finish(paths, integrate_fixed(paths, alphas, weights))
        if not return_convergence_delta:
            return attr
        f_x, f_base = self._endpoint_scores(paths)
        return attr, _gap(attr, f_x, f_base)

    def explain(self, inputs: Tensor, target: TargetLike = None, baselines: BaselineLike = None,
                tolerance: float = 0.01, max_steps: int = 512, n_steps: int | None = None,
                method: str = "gauss_legendre", internal_batch_size: ChunkLike = "auto",
                atol: float | None = None) -> Explanation:
        """IG with its error report; adaptive unless ``n_steps`` is given.

        Adaptive mode (``n_steps=None``) refines each sample's path separately until both the
        estimated relative L2 error of its attribution map, ``|A - IG| / |IG|``, is at most
        ``tolerance`` (``Explanation.error``) and its completeness gap satisfies
        ``|sum(attribution) - (f(x) - f(x'))| <= tolerance * |f(x) - f(x')|``, reusing every
        gradient (see :mod:`lumos.attribution.adaptive`); ``method`` is then unused. Where the
        score's change is itself rounding (``|f(x) - f(x')| < 64 eps max(1, |f(x)|, |f(x')|)``)
        that level stands in for it, so such samples can still converge; an explicit ``atol``
        replaces this by ``tolerance * |f(x) - f(x')| + atol``. Samples
        that would need more than ``max_steps`` gradient evaluations stop there and are marked
        ``converged=False`` with a :class:`ConvergenceWarning`.

        With ``n_steps`` the fixed rule ``method`` is used, ``error`` is ``None`` and
        ``converged`` says whether each sample met the completeness criterion. ``n_steps`` in
        the result counts gradient evaluations per sample (over all its baselines).
        """
        x, paths, tgt = self._prepare(inputs, baselines, target, internal_batch_size)
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        k = paths.n_baselines
        if n_steps is None:
            steps = quadrature.check_steps(max_steps, "riemann_trapezoid")
            if steps < INITIAL_NODES * k:
                raise ValueError(f"max_steps must be at least {INITIAL_NODES * k} "
                                 f"({INITIAL_NODES} per baseline) for adaptive IG, got {max_steps}")
            res = integrate_adaptive(paths, tolerance, steps, atol, self.multiply_by_inputs)
            attr = res.attribution
            f_x = res.f_end.to(device=x.device, dtype=attr.dtype)
            f_base = res.f_start.to(device=x.device, dtype=attr.dtype)
            spent, error = res.n_steps, res.error.to(device=x.device, dtype=attr.dtype)
        else:
            alphas, weights = quadrature.rule(quadrature.canonical_method(method), n_steps)
            attr = self._finish(paths, integrate_fixed(paths, alphas, weights))
            f_x, f_base = self._endpoint_scores(paths)
            spent, error = torch.full((x.shape[0],), n_steps * k, dtype=torch.long), None
        delta = _gap(attr, f_x, f_base)
        converged = self._converged(delta, f_x, f_base, tolerance, atol, x.dtype)
        if n_steps is None:
            converged = res.converged
        _warn_unconverged(converged, tolerance)
        return Explanation(attribution=attr, output=f_x, method=self.method,
                           target=None if tgt.classes is None else tgt.classes.clone(),
                           delta=delta, baseline_output=f_base, n_steps=spent,
                           converged=converged, error=error)

    def _prepare(self, inputs: Tensor, baselines: BaselineLike, target: TargetLike,
                 internal_batch_size: ChunkLike) -> tuple[Tensor, Paths, Target]:
        x = check_input(inputs).detach()
        check_model(self.model)  # again: the model may have been put in training mode since
        tgt = Target(target, x.shape[0])
        paths = Paths(self.model, x, resolve(baselines, x), tgt, internal_batch_size)
        return x, paths, tgt

    def _finish(self, paths: Paths, total: Tensor) -> Tensor:
        """Per-path sums of weighted gradients -> per-sample attribution (mean over baselines)."""
        attr = total * paths.difference() if self.multiply_by_inputs else total
        return attr.view(paths.n_baselines, *paths.inputs.shape).mean(0)

    def _endpoint_scores(self, paths: Paths) -> tuple[Tensor, Tensor]:
        """``f(x)`` per sample and the mean over baselines of ``f(x')``."""
        n = paths.n_samples
        f_x = paths.scores(paths.inputs, torch.arange(n))
        f_b = paths.scores(paths.start, torch.arange(paths.n_paths))
        return f_x, f_b.view(paths.n_baselines, n).mean(0)

    @staticmethod
    def _converged(delta: Tensor, f_x: Tensor, f_base: Tensor, tolerance: float,
                   atol: float | None, dtype: torch.dtype) -> Tensor:
        bound = torch.tensor([completeness_bound(tolerance, float(a), float(b), dtype, atol)
                              for a, b in zip(f_x, f_base, strict=True)], dtype=torch.float64)
        return delta.abs().double().cpu() <= bound


def _gap(attr: Tensor, f_x: Tensor, f_base: Tensor) -> Tensor:
    """Completeness gap ``sum(attr) - (f(x) - f(x'))`` per sample."""
    return attr.flatten(1).sum(1) - (f_x - f_base).to(attr)


def _warn_unconverged(converged: Tensor, tolerance: float) -> None:
    if bool(converged.all()):
        return
    bad = (~converged).nonzero()[:, 0].tolist()
    warnings.warn(f"{len(bad)} of {converged.numel()} samples did not reach the tolerance "
                  f"{tolerance} (estimated map error and completeness gap; samples {bad[:10]}); "
                  f"raise max_steps or n_steps, and see Explanation.converged, .error and .delta",
                  ConvergenceWarning, stacklevel=3)
