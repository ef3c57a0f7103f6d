"""Faithfulness by perturbation: pixel flipping / region perturbation, AOPC, insertion/deletion.

Pixel flipping (Bach et al. 2015) and region perturbation (Samek et al. 2017) remove the input
in order of relevance and track the explained score: a faithful explanation makes the score fall
fast when the most relevant pixels go first (MoRF) and stay while the least relevant go first
(LeRF). Insertion/deletion (Petsiuk et al. 2018) summarise the same idea as areas under curves.

Conventions
-----------
- A *pixel* is one spatial position; its relevance is the attribution summed over channels and
  all channels of a pixel are removed together. Inputs ``(N, D)`` have one feature per pixel.
- With ``patch = p > 1`` the image is cut into a grid of ``p x p`` patches (edge patches may be
  smaller); a patch's relevance is the sum inside it and patches are removed whole.
- ``steps`` steps remove ``P`` patches: step ``k`` removes the patches ranked
  ``[ceil(kP/S), ceil((k+1)P/S))``, so every step removes ``P/S`` patches when that divides.
  Ties in relevance are broken by position (stable sort), identically for MoRF and LeRF.
- A curve has ``steps + 1`` points: the unperturbed score, then the score after each step.

Speed
-----
Steps run in order over one running copy of the inputs: a step overwrites only its own pixels
(one masked fill, no re-building from scratch), then all samples are scored in large batched
forwards under ``torch.inference_mode``. The model is a function of its input, so a sample
whose step changes nothing (all its removed pixels already equal the fill, like MNIST's black
background with ``fill=0``) reuses its previous score instead of a forward, and inputs that are
entirely fill are scored once. The curves are exactly those of a step-by-step loop.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import TargetLike
from lumos.metrics._common import (
    Score,
    Scorer,
    check_attribution,
    check_choice,
    check_positive_int,
    forward_scores,
    model_outputs,
)
from lumos.metrics._sort import argsort_rows
from lumos.metrics.fills import Fill, fill_image

Order = Literal["morf", "lerf"]


def patch_index(spatial: tuple[int, ...], patch: int, device: torch.device | None = None
                ) -> tuple[Tensor, int]:
    """Patch number of every pixel (flattened, row-major) and the number of patches."""
    grids = torch.meshgrid(*[torch.arange(s, device=device) // patch for s in spatial],
                           indexing="ij")
    counts = [-(-s // patch) for s in spatial]
    index = torch.zeros(spatial, dtype=torch.long, device=device)
    for grid, count in zip(grids, counts, strict=True):
        index = index * count + grid
    n_patches = 1
    for count in counts:
        n_patches *= count
    return index.reshape(-1), n_patches


def _pixels(t: Tensor) -> Tensor:
    """View ``(N, C, *spatial)`` (or ``(N, D)``) as ``(N, C, pixels)``."""
    if t.dim() == 2:
        return t[:, None, :]
    return t.reshape(t.shape[0], t.shape[1], -1)


def removal_steps(x: Tensor, attribution: Tensor, steps: int | None, patch: int = 1,
                  order: Order = "morf") -> tuple[Tensor, int]:
    """At which step each pixel is removed: ``(N, pixels)`` long tensor, and the step count.

    Validates ``attribution`` (shape, finiteness), ``steps``, ``patch`` and ``order``.
    """
    x = check_input(x)
    attribution = check_attribution(x, attribution)
    check_choice("order", order, ("morf", "lerf"))
    check_positive_int("patch", patch)
    spatial = tuple(x.shape[1:]) if x.dim() == 2 else tuple(x.shape[2:])
    if x.dim() == 2 and patch != 1:
        raise ValueError("patch > 1 needs inputs with channels and spatial dims (N, C, ...); "
                         f"got shape {tuple(x.shape)}")
    if patch > min(spatial):
        raise ValueError(f"patch={patch} is larger than the input's spatial size {spatial}")
    pixel_patch, n_patches = patch_index(spatial, patch, x.device)
    steps = n_patches if steps is None else check_positive_int("steps", steps)
    if steps > n_patches:
        raise ValueError(f"steps={steps} is larger than the number of patches ({n_patches} "
                         f"patches of {patch}x{patch} in {spatial}); use steps <= {n_patches}")
    pixel_rel = _pixels(attribution).sum(1)
    relevance = pixel_rel.new_zeros(x.shape[0], n_patches).index_add_(1, pixel_patch, pixel_rel)
    ranked = argsort_rows(relevance, descending=order == "morf").to(x.device)
    rank = torch.empty_like(ranked).scatter_(
        1, ranked, torch.arange(n_patches, device=x.device).expand_as(ranked))
    step_of_patch = (rank * steps) // n_patches
    return step_of_patch[:, pixel_patch], steps


def perturbation_curve(model: nn.Module, start: Tensor, end: Tensor | float, step: Tensor,
                       steps: int, scorer: Scorer, batch_size: int = 256) -> Tensor:
    """Scores while pixels move from ``start`` to ``end`` in the order given by ``step``.

    Point ``k`` of the curve scores the input whose pixels with ``step < k`` come from ``end``
    and the others from ``start``. Returns ``(N, steps + 1)``.
    """
    check_positive_int("batch_size", batch_size)
    if model.training:
        warnings.warn("the model is in training mode (dropout, batch statistics): its scores "
                      "are random and unchanged steps are not re-scored; call model.eval()",
                      stacklevel=3)
    n, shape = start.shape[0], start.shape[1:]
    first = _pixels(start)
    last = end if isinstance(end, float) else _pixels(end)
    diff = (first != last).any(1)
    changes = torch.zeros(n, steps, device=start.device).scatter_reduce_(
        1, step, diff.float(), "amax") > 0
    last_change = torch.where(diff, step, -1).amax(1)
    k = torch.arange(steps + 1, device=start.device)
    complete = k[None, :] > last_change[:, None]
    need = torch.cat([torch.ones_like(changes[:, :1]), changes], 1) & ~complete
    values = torch.zeros(n, steps + 1, dtype=torch.float64, device=start.device)
    current = first.clone()
    for j in range(steps + 1):
        if j:
            moved = (step == j - 1)[:, None, :]
            if isinstance(last, float):
                current.masked_fill_(moved, last)
            else:
                current.copy_(torch.where(moved, last, current))
        rows = need[:, j].nonzero()[:, 0]
        if rows.numel() == n:
            images = current.view(n, *shape)
        elif rows.numel():
            images = current[rows].view(-1, *shape)
        else:
            continue
        values[rows, j] = forward_scores(model, images.__getitem__, rows, scorer,
                                         batch_size).double()
    done_rows = complete.any(1).nonzero()[:, 0]
    if done_rows.numel():
        end_scores = _score_inputs(model, end, done_rows, start, scorer, batch_size)
        values = torch.where(complete, end_scores.double()[:, None], values)
    known = need | complete
    source = torch.where(known, k, 0).cummax(1).values
    return values.gather(1, source).to(_score_dtype(start))


def _score_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.dtype.is_floating_point else torch.float32


def _score_inputs(model: nn.Module, inputs: Tensor | float, rows: Tensor, like: Tensor,
                  scorer: Scorer, batch_size: int) -> Tensor:
    """Scores of ``inputs`` for every sample (zeros where a sample is not in ``rows``).

    A constant input is the same image for every sample: it is run through the model once.
    """
    if isinstance(inputs, float):
        n = like.shape[0]
        if not rows.numel():
            return torch.zeros(n, device=like.device)
        output = model_outputs(model, torch.full_like(like[:1], inputs))
        return scorer(output.expand(n, *output.shape[1:]), torch.arange(n, device=like.device))
    values = forward_scores(model, lambda chunk: inputs[rows[chunk]], rows, scorer, batch_size)
    out = torch.zeros(inputs.shape[0], dtype=values.dtype, device=inputs.device)
    out[rows] = values
    return out


def pixel_flipping(model: nn.Module, x: Tensor, attribution: Tensor, target: TargetLike = None,
                   *, steps: int | None = None, patch: int = 1, order: Order = "morf",
                   fill: Fill = 0.0, score: Score = "logit", batch_size: int = 256,
                   seed: int = 0) -> Tensor:
    """Score curve per sample while pixels (or patches) are removed in order of relevance.

    Parameters
    ----------
    model:
        The classifier; used as is (call ``model.eval()`` yourself), never modified.
    x, attribution:
        Inputs ``(N, C, H, W)`` (or ``(N, D)``) and their relevance, same shape (a
        channel-summed ``(N, 1, H, W)`` attribution works too).
    target:
        Which score to track (see :class:`lumos.attribution.targets.Target`).
    steps:
        Number of removal steps (default: one patch per step); at most the number of patches.
    patch:
        Side of the square regions removed together (``1``: pixel flipping).
    order:
        ``"morf"``: most relevant first; ``"lerf"``: least relevant first.
    fill:
        What removed pixels become: a constant, ``"mean"``, ``"blur"``, ``"uniform"`` or a
        tensor (see :func:`lumos.metrics.fills.fill_image`).
    score:
        ``"logit"`` tracks the raw output, ``"softmax"`` the class probability.
    batch_size:
        Perturbed inputs per forward pass.
    seed:
        Seeds ``fill="uniform"``.

    Returns
    -------
    Tensor
        ``(N, steps + 1)``: the unperturbed score, then the score after each step.
    """
    step, steps = removal_steps(x, attribution, steps, patch, order)
    scorer = Scorer(target, x.shape[0], score)
    end = fill_image(x, fill, seed)
    return perturbation_curve(model, x, end, step, steps, scorer, batch_size)


def aopc(curve: Tensor) -> Tensor:
    """Area over the perturbation curve per sample (Samek et al. 2017).

    ``AOPC = 1/(L+1) * sum_{k=0..L} (f(x^(0)) - f(x^(k)))`` for a curve of ``L + 1`` points;
    higher means the removed pixels mattered more. Average over samples yourself.
    """
    curve = check_input(curve, "curve")
    if curve.dim() != 2 or curve.shape[1] < 2:
        raise ValueError(f"curve must have shape (N, steps + 1) with at least 2 points, got "
                         f"{tuple(curve.shape)}")
    return (curve[:, :1] - curve).mean(1)


def auc(curve: Tensor) -> Tensor:
    """Area under each curve ``(N, L + 1)`` with the x-axis scaled to ``[0, 1]`` (trapezoid)."""
    curve = check_input(curve, "curve")
    if curve.dim() != 2 or curve.shape[1] < 2:
        raise ValueError(f"curve must have shape (N, steps + 1) with at least 2 points, got "
                         f"{tuple(curve.shape)}")
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


@dataclass(frozen=True)
class InsertionDeletion:
    """Per-sample areas and curves of the insertion and deletion games (Petsiuk et al. 2018).

    A faithful explanation has a high ``insertion`` and a low ``deletion`` area.
    """

    insertion: Tensor
    deletion: Tensor
    insertion_curve: Tensor
    deletion_curve: Tensor


def insertion_deletion(model: nn.Module, x: Tensor, attribution: Tensor,
                       target: TargetLike = None, *, steps: int | None = None, patch: int = 1,
                       baseline: Fill = "blur", fill: Fill = 0.0, score: Score = "softmax",
                       batch_size: int = 256, seed: int = 0) -> InsertionDeletion:
    """Insertion and deletion areas under the curve, most relevant pixels first.

    Deletion removes pixels from ``x`` (they become ``fill``); insertion starts from
    ``baseline`` (default: a blurred copy, as in the paper) and puts the pixels of ``x`` back.
    Other parameters as in :func:`pixel_flipping`.
    """
    step, steps = removal_steps(x, attribution, steps, patch, "morf")
    scorer = Scorer(target, x.shape[0], score)
    deletion = game_curve(model, x, "deletion", step, steps, scorer, fill, seed, batch_size)
    insertion = game_curve(model, x, "insertion", step, steps, scorer, baseline, seed,
                           batch_size)
    return InsertionDeletion(auc(insertion), auc(deletion), insertion, deletion)


def game_curve(model: nn.Module, x: Tensor, game: str, step: Tensor, steps: int,
               scorer: Scorer, reference: Fill, seed: int = 0, batch_size: int = 256) -> Tensor:
    """One curve of the insertion (from ``reference`` to ``x``) or deletion game."""
    check_choice("game", game, ("insertion", "deletion"))
    image = fill_image(x, reference, seed)
    if game == "deletion":
        return perturbation_curve(model, x, image, step, steps, scorer, batch_size)
    start = torch.full_like(x, image) if isinstance(image, float) else image
    return perturbation_curve(model, start, x, step, steps, scorer, batch_size)
