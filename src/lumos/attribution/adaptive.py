"""Adaptive path integration: per-sample refinement until IG's *map* and its sum are accurate.

Every path is cut into panels evaluated at both ends and the midpoint (see
:mod:`lumos.attribution.panels`): the attribution is the two-half-panel trapezoid rule, and the
difference to the one-panel rule, a vector per panel, estimates the relative L2 error of the
whole attribution map, ``|A - IG| / |IG|``, from the gradients already paid for. The scalar
integrand ``grad f . (x - x')`` integrates exactly to ``f(b) - f(a)`` on every panel (the
forward pass of each gradient gives ``f`` for free), so the completeness gap ``delta`` is also
known per panel.

A sample is done when both hold: estimated map error ``<= tolerance`` and
``|delta| <= tolerance * |f(x) - f(x')| + atol`` (with several baselines: the mean gap against
the mean baseline output, and the error of the mean map). Until then each round *plans* its
cuts (:func:`plan`): every panel is cut into an even number ``k`` of equal intervals, chosen
so that the estimate expected afterwards lands on the tolerance with the fewest new nodes
(a panel's share falls like ``1 / k`` when many small gradient jumps sit in it, the slowest
case; ``k ~ |V_p|^(2/3)``). Landing in one round matters: ReLU-like networks flip thousands
of units along a path (a random ReLU6/Softplus CNN on 3x32x32 inputs: about 10,000), so the
gradient is a random walk and equal intervals are the best nodes where it is alike; halving
some intervals and not others, round after round, costs up to 40% more squared error for the
same nodes. Once the map is fine and the gap is not, the panels whose exact shares of the gap
have its sign are halved, largest first. Every node already paid for is reused. All
unfinished samples (and all their baselines) are refined together, one batched model call per
round. A sample stops unfinished when its next cuts would exceed ``max_steps`` gradient
evaluations and is reported as not converged.

Memory: a sample's node gradients are kept until it is done (its ``n_steps`` input-sized
tensors), then folded into its attribution and freed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lumos.attribution.panels import Assessment, PathNodes, assess
from lumos.attribution.paths import Paths

INITIAL_PANELS = 4
#: Gradient evaluations per path before any refinement.
INITIAL_NODES = 2 * INITIAL_PANELS + 1
#: Panels narrower than this are not cut further (float64 positions).
MIN_WIDTH = 1e-9


@dataclass(frozen=True)
class Cut:
    """Panel ``[left, left + width]`` of one path, to be cut into ``count`` equal intervals."""

    path: int
    left: float
    width: float
    count: int

    def nodes(self) -> np.ndarray:
        """The new nodes (the panel's midpoint is already paid for)."""
        inner = np.arange(1, self.count)
        inner = inner[inner != self.count // 2]
        return self.left + self.width * inner / self.count


@dataclass
class AdaptiveResult:
    """Per-sample attribution and the bookkeeping of the refinement."""

    attribution: Tensor
    f_end: Tensor
    f_start: Tensor
    n_steps: Tensor
    converged: Tensor
    error: Tensor


class _Refiner:
    """State of the adaptive loop over all paths of a batch."""

    def __init__(self, paths: Paths, tolerance: float, atol: float | None,
                 multiply_by_inputs: bool) -> None:
        self.paths = paths
        self.tolerance = tolerance
        self.atol = atol
        diff = paths.difference()
        self.diff = diff
        k = paths.n_baselines
        self.scale = diff / k if multiply_by_inputs else torch.full_like(diff[:1], 1.0 / k)
        self.nodes: list[PathNodes | None] = [None] * paths.n_paths

    def evaluate(self, path_ids: np.ndarray, alphas: np.ndarray) -> None:
        """Gradients at the given points, inserted into their paths."""
        ids = torch.as_tensor(path_ids, dtype=torch.long)
        moved = np.where(alphas == 0.0, start_offset(self.diff.dtype), alphas)
        alpha = torch.as_tensor(moved, dtype=torch.float64)
        f_all, h_all = [], []
        g_all: list[Tensor] = []
        for rows, score, grad in self.paths.evaluate(ids, alpha):
            diff = self.diff[ids[rows].to(self.diff.device)]
            h_all.append((grad * diff).flatten(1).sum(1).double().cpu())
            f_all.append(score.double().cpu())
            g_all.extend(g.clone() for g in grad)  # own storage: freed when its sample is done
        f, h = torch.cat(f_all).numpy(), torch.cat(h_all).numpy()
        f = f - (moved - alphas) * h  # the score at the path's start, to first order
        for p in np.unique(path_ids):
            sel = np.flatnonzero(path_ids == p)
            current = self.nodes[p]
            grads = [g_all[i] for i in sel]
            if current is None:
                order = np.argsort(alphas[sel], kind="stable")
                self.nodes[p] = PathNodes(alphas[sel][order], f[sel][order], h[sel][order],
                                          [grads[i] for i in order])
            else:
                current.insert(alphas[sel], f[sel], h[sel], grads)

    def group(self, sample: int) -> list[int]:
        return list(range(sample, self.paths.n_paths, self.paths.n_samples))

    def members(self, sample: int) -> list[PathNodes]:
        out = [self.nodes[p] for p in self.group(sample)]
        assert all(m is not None for m in out)
        return out  # type: ignore[return-value]

    def assess(self, sample: int) -> Assessment:
        scales = [self.scale[p if self.scale.shape[0] > 1 else 0] for p in self.group(sample)]
        return assess(self.members(sample), scales)

    def bound(self, sample: int) -> float:
        """The completeness bound of one sample (:func:`completeness_bound`)."""
        members = self.members(sample)
        f_x = float(members[0].f[-1])
        f_base = float(np.mean([m.f[0] for m in members]))
        return completeness_bound(self.tolerance, f_x, f_base, self.diff.dtype, self.atol)

    def map_ok(self, state: Assessment) -> bool:
        """Whether the estimated map error is within the tolerance (up to rounding)."""
        target = self.tolerance * float(state.attribution.double().norm())
        return state.error_abs <= target + self.map_slack(state)

    def map_slack(self, state: Assessment) -> float:
        """Absolute floor of the map criterion: rounding level of the attribution."""
        eps = torch.finfo(self.diff.dtype).eps
        return self.tolerance * eps**0.5 * float(state.attribution.double().norm()) + 1e-300

    def marked(self, sample: int, state: Assessment, bound: float, room: int) -> list[Cut]:
        """The panels to cut next and into how many intervals (see :func:`plan`), the one
        that matters most first."""
        ids, lefts, widths = [], [], []
        for p, nodes in zip(self.group(sample), self.members(sample), strict=True):
            ids.append(np.full(nodes.widths.shape, p))
            lefts.append(nodes.lefts)
            widths.append(nodes.widths)
        width = np.concatenate(widths)
        open_ = width > MIN_WIDTH
        norm = float(state.attribution.double().norm())
        target = self.tolerance * norm
        weight, share = np.zeros(width.shape), None
        if not self.map_ok(state):
            growth = max(1.0, state.error_abs / max(target, 1e-300))
            weight = np.where(open_, state.factor_after(growth) ** 2 * state.panel_v, 0.0)
        elif abs(state.gap) > bound:
            share = np.where(open_, state.panel_gap, 0.0)
        counts = plan(weight, target, share, bound, room)
        priority = weight if share is None else np.abs(share)
        order = np.flatnonzero(counts > 2)
        order = order[np.argsort(-priority[order], kind="stable")]
        path_ids, left = np.concatenate(ids), np.concatenate(lefts)
        return [Cut(int(path_ids[i]), float(left[i]), float(width[i]), int(counts[i]))
                for i in order]

    def finish(self, sample: int, state: Assessment) -> Tensor:
        """The sample's attribution (from its last assessment); its node gradients are freed."""
        for p in self.group(sample):
            nodes = self.nodes[p]
            assert nodes is not None
            nodes.grads = []
        return state.attribution


def plan(weight: np.ndarray, target: float, share: np.ndarray | None = None,
         bound: float = 0.0, room: int = 2**31) -> np.ndarray:
    """How many equal intervals each panel is cut into next (even; 2 = left as it is).

    Map: a panel's error estimate is ``weight`` squared-summed over panels (``weight =
    c^2 |V|^2``); cut into ``k`` equal intervals it is expected to fall to ``weight (2 / k)^2``
    (many small jumps: the error of ``k`` intervals goes like ``1 / k``; smooth stretches fall
    faster). The counts are the fewest new nodes whose expected estimate is ``<= target``:
    the continuous optimum ``k ~ weight^(1/3)`` rounded down, then two nodes at a time where
    they remove the most. Landing near the target in one round keeps the mesh nearly uniform
    where the integrand is alike (halving some intervals and not others costs up to 40% more
    squared error than equal intervals with the same nodes).

    Completeness (``share``: each panel's exact signed part of the gap, used when the map is
    fine): the panels whose parts have the gap's sign, largest first, are halved until they
    hold all of the gap but half the ``bound``; their new parts are smaller and of either sign.

    At least one panel is cut whenever there is something to reduce, and the map's cuts add
    at most about ``room`` nodes.
    """
    counts = np.full(weight.shape, 2, dtype=np.int64)
    total = float(weight.sum())
    if 0.0 < total <= target**2:
        counts[np.argmax(weight)] = 4
    elif total > 0.0:
        root = np.cbrt(weight)
        with np.errstate(over="ignore", divide="ignore"):
            ideal = 2.0 * root * np.sqrt(float(root.sum())) / target
        extra = float(np.sum(np.maximum(ideal - 2.0, 0.0)))
        if not np.isfinite(extra) or extra > room:  # the budget decides: spread it alike
            ideal = 2.0 + room * root / float(root.sum())
        counts = np.maximum(2, 2 * np.floor(ideal / 2)).astype(np.int64)
        while (float(np.sum(weight * (2.0 / counts) ** 2)) > target**2
               and int(np.sum(counts - 2)) < room):
            gain = weight * ((2.0 / counts) ** 2 - (2.0 / (counts + 2)) ** 2)
            counts[np.argmax(gain)] += 2
    if share is not None:
        gap = float(share.sum())
        same = np.flatnonzero(np.sign(share) == np.sign(gap))
        same = same[np.argsort(-np.abs(share[same]), kind="stable")]
        need = abs(gap) - 0.5 * bound
        take = int(np.searchsorted(np.cumsum(np.abs(share[same])), need)) + 1
        counts[same[:take]] = np.maximum(counts[same[:take]], 4)
    return counts


def _within(cuts: list[Cut], room: int) -> tuple[np.ndarray, np.ndarray]:
    """New nodes ``(path ids, alphas)`` of the leading cuts that fit in ``room`` evaluations;
    if not even the first does, that panel halved, when its two nodes fit."""
    ids, alphas, used = [], [], 0
    for cut in cuts:
        points = cut.nodes()
        if used + points.size > room:
            break
        ids.append(np.full(points.size, cut.path))
        alphas.append(points)
        used += points.size
    if not ids and cuts and room >= 2:
        first = Cut(cuts[0].path, cuts[0].left, cuts[0].width, 4)
        ids, alphas = [np.full(2, first.path)], [first.nodes()]
    if not ids:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(ids), np.concatenate(alphas)


def start_offset(dtype: torch.dtype) -> float:
    """Where the gradient "at the baseline" is taken: ``alpha = min(sqrt(eps), 1e-3)``.

    The baseline itself is a degenerate point for many models: at a black image every
    feature map is constant in space, so max-pooling breaks ties by position and the gradient
    there differs from its limit ``alpha -> 0+``, which is what the integral sees. A node at
    exactly 0 would carry that outlier with the weight of half a panel (on a random
    ReLU6/max-pool CNN it doubles the map error of the trapezoid rule); a node a little
    inside the path does not. Fixed rules (Gauss-Legendre, Riemann) never evaluate 0 either.
    """
    return min(float(torch.finfo(dtype).eps) ** 0.5, 1e-3)


#: Below this many units in the last place of the larger score, ``f(x) - f(x')`` is rounding.
ROUNDING_ULPS = 64


def completeness_bound(tolerance: float, f_x: float, f_base: float, dtype: torch.dtype,
                       atol: float | None = None) -> float:
    """The largest completeness gap a sample may keep.

    With ``atol``: ``tolerance * |f(x) - f(x')| + atol``. By default
    ``tolerance * max(|f(x) - f(x')|, 64 eps max(1, |f(x)|, |f(x')|))``: the gap relative to
    the score's change, as asked, unless that change is itself at the rounding level of the
    scores (then a relative gap means nothing, and rounding could keep it from ever
    converging).
    """
    change = abs(f_x - f_base)
    if atol is not None:
        return tolerance * change + atol
    floor = ROUNDING_ULPS * float(torch.finfo(dtype).eps) * max(1.0, abs(f_x), abs(f_base))
    return tolerance * max(change, floor)


def integrate_adaptive(paths: Paths, tolerance: float, max_steps: int, atol: float | None,
                       multiply_by_inputs: bool = True) -> AdaptiveResult:
    """Refine every path until its sample meets the tolerance or the step budget."""
    ref = _Refiner(paths, tolerance, atol, multiply_by_inputs)
    n, k = paths.n_samples, paths.n_baselines
    start = np.linspace(0.0, 1.0, INITIAL_NODES)
    ref.evaluate(np.repeat(np.arange(paths.n_paths), start.size), np.tile(start, paths.n_paths))
    spent = np.full(n, k * start.size)
    active = np.ones(n, dtype=bool)
    done = np.zeros(n, dtype=bool)
    error = np.zeros(n)
    attr: list[Tensor | None] = [None] * n
    while active.any():
        new_ids, new_alpha = [], []
        for s in np.flatnonzero(active):
            state, bound = ref.assess(int(s)), ref.bound(int(s))
            error[s] = state.error
            done[s] = ref.map_ok(state) and abs(state.gap) <= bound
            room = int(max_steps - spent[s])
            cuts = [] if done[s] or room < 2 else ref.marked(int(s), state, bound, room)
            ids, alphas = _within(cuts, room)
            if done[s] or ids.size == 0:
                active[s] = False
                attr[s] = ref.finish(int(s), state)
                continue
            new_ids.append(ids)
            new_alpha.append(alphas)
            spent[s] += ids.size
        if new_ids:
            ref.evaluate(np.concatenate(new_ids), np.concatenate(new_alpha))
    f_end = torch.tensor([ref.members(s)[0].f[-1] for s in range(n)])
    f_start = torch.tensor([float(np.mean([m.f[0] for m in ref.members(s)])) for s in range(n)])
    stacked = torch.stack([a for a in attr if a is not None])
    return AdaptiveResult(stacked, f_end, f_start, torch.as_tensor(spent, dtype=torch.long),
                          torch.as_tensor(done), torch.as_tensor(error))
