"""Gathering CRP's conditioned passes into the tensors :class:`lumos.crp.CRP` returns: the
conditions' plans run one after another (:mod:`lumos.crp.passes`), their rows put back in the
caller's order of samples and conditions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lumos.attribution.targets import Target
from lumos.crp import conditions as cond
from lumos.crp import seam
from lumos.crp.passes import ConditionalPasses
from lumos.lrp.engine import LRP


def conditioned(passes: ConditionalPasses, x: Tensor, tgt: Target,
                canon: list[cond.Condition], batch_size: int | None
                ) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Every sample under every condition: heatmaps ``(N, K, *x.shape[1:])``, the relevance
    through each condition's concept ``(N, K)``, and per condition that relevance per position
    of its highest layer ``(N, positions)``."""
    n, k = len(x), len(canon)
    heat = x.new_zeros((n, k, *x.shape[1:]))
    total = x.new_zeros((n, k))
    positions: list[Tensor | None] = [None] * k
    for plan in passes.plans(canon, x):
        got = passes.run(x, tgt, plan, [], batch_size, heatmap=True)
        heat[:, plan.index] = got["heatmap"]
        total[:, plan.index] = got["relevance"]
        for j, i in enumerate(plan.index):
            positions[i] = got["positions"][:, j]
    return heat, total, [p for p in positions if p is not None]


def each(passes: ConditionalPasses, x: Tensor, tgt: Target, canon: list[cond.Condition],
         rows: int) -> tuple[Tensor, Tensor, list[Tensor]]:
    """Sample ``i`` under ``canon[i]`` only, ``rows`` samples per pass: heatmaps ``(N, ...)``,
    relevance ``(N,)`` and per sample its relevance per position of the condition's highest
    layer."""
    heat, total = torch.zeros_like(x), x.new_zeros(len(x))
    positions: list[Tensor | None] = [None] * len(x)
    for plan in passes.plans(canon, x):
        index = torch.tensor(plan.index)
        for lo in range(0, len(index), rows):
            idx = index[lo:lo + rows]
            got = passes.rows(x[idx], tgt.subset(idx), plan, [canon[int(i)] for i in idx], {},
                              heatmap=True)
            heat[idx], total[idx] = got["heatmap"], got["relevance"]
            for j, i in enumerate(idx.tolist()):
                positions[i] = got["positions"][j]
    return heat, total, [p for p in positions if p is not None]


def layer_relevance(passes: ConditionalPasses, x: Tensor, tgt: Target,
                    canon: list[cond.Condition], names: list[str], batch_size: int | None
                    ) -> dict[str, Tensor]:
    """Per layer in ``names``, ``(N, K, channels)``: the relevance of each concept of the layer
    as the backward pass conditioned on each of the ``K`` conditions carries it there."""
    out: dict[str, Tensor] = {}
    for plan in passes.plans(canon, x):
        got = passes.run(x, tgt, plan, names, batch_size, heatmap=False)
        for name in names:
            values = got[f"layer:{name}"]
            if name not in out:
                out[name] = values.new_zeros((len(x), len(canon), values.shape[-1]))
            out[name][:, plan.index] = values
    return out


def statistics(passes: ConditionalPasses, x: Tensor, tgt: Target,
               wanted: dict[str, seam.Layer], rows: int, which: Sequence[str], heatmap: bool
               ) -> dict[str, dict[str, Tensor]]:
    """:meth:`lumos.crp.CRP.statistics` over ``x`` in passes of ``rows`` samples."""
    parts: list[dict[str, dict[str, Tensor]]] = []
    for lo in range(0, len(x), rows):
        idx = torch.arange(lo, min(lo + rows, len(x)))
        parts.append(passes.statistics_rows(x[idx], tgt.subset(idx), wanted, which, heatmap))
    return {name: {k: torch.cat([p[name][k] for p in parts]) for k in parts[0][name]}
            for name in parts[0]}


def layer_shapes(lrp: LRP, wanted: dict[str, seam.Layer], x: Tensor
                 ) -> dict[str, tuple[int, ...]]:
    """Per layer: ``(channels, *positions)`` of its output for inputs like ``x`` (one forward
    pass of its first sample)."""
    with torch.no_grad():
        p = seam.forward(lrp, x[:1], wanted)
    shapes: dict[str, tuple[int, ...]] = {}
    for name, layer in wanted.items():
        t = p.tensors[name]
        dim = layer.channel_dim % t.dim()
        rest = [s for i, s in enumerate(t.shape) if i not in (0, dim)]
        shapes[name] = (int(t.shape[dim]), *rest)
    return shapes
