"""The conditioned LRP passes behind :class:`lumos.crp.CRP`: conditions grouped into plans, rows
batched, and the backward pass split at the condition layers (see :mod:`lumos.crp.attribution`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lumos.attribution.targets import Target
from lumos.crp import conditions as cond
from lumos.crp import seam

#: Memory a pass may use by default (bytes), for the default ``batch_size``.
MEMORY_BUDGET = 2 * 2**30


def default_rows(x: Tensor) -> int:
    """Rows per pass when the caller gives no ``batch_size``: about :data:`MEMORY_BUDGET`
    for a model whose activations and LRP state take some 400 times the input's size."""
    per_row = max(1, x[0].numel() * x.element_size() * 400)
    return max(1, min(256, MEMORY_BUDGET // per_row))


@dataclass
class Plan:
    """One group of conditions over the same layers: their order and per-row masks."""

    layers: list[seam.Layer]          # condition layers, output side first
    conditions: list[cond.Condition]
    index: list[int]                  # position of each condition in the caller's list


class ConditionalPasses:
    """Runs CRP's passes on one :class:`lumos.LRP`'s prepared programs.

    Parameters
    ----------
    lrp : lumos.LRP
        The engine whose prepared model, rules and start relevance the passes use.
    layers : callable
        ``layers(names, x)``: the concept layers named, for inputs like ``x``.
    """

    def __init__(self, lrp: Any,
                 layers: Callable[[Iterable[str], Tensor], dict[str, seam.Layer]]) -> None:
        self.lrp, self._layers = lrp, layers

    def plans(self, canon: list[cond.Condition], x: Tensor) -> list[Plan]:
        """The conditions grouped by the layers they name, each group a :class:`Plan`."""
        wanted = self._layers(sorted({n for c in canon for n in c}), x)
        groups: dict[tuple[str, ...], Plan] = {}
        for i, c in enumerate(canon):
            key = tuple(sorted(c))
            if key not in groups:
                order = sorted((wanted[n] for n in key), key=lambda lay: -lay.position)
                positions = [lay.position for lay in order]
                if len(set(positions)) != len(positions):
                    raise ValueError(f"conditions[{i}] names layers that are read at the same "
                                     f"place of the model ({', '.join(key)})")
                groups[key] = Plan(order, [], [])
            groups[key].conditions.append(c)
            groups[key].index.append(i)
        return list(groups.values())

    def run(self, x: Tensor, tgt: Target, plan: Plan, record: list[str],
            batch_size: int | None, heatmap: bool) -> dict[str, Tensor]:
        """What :meth:`rows` gives, each ``(N, K, ...)``, for one plan; rows
        ordered condition-major in batches of ``batch_size``."""
        n, k = len(x), len(plan.conditions)
        rows = batch_size or default_rows(x)
        record_layers = self._layers(record, x) if record else {}
        out: dict[str, Tensor] = {}
        for lo in range(0, k * n, rows):
            r = torch.arange(lo, min(lo + rows, k * n))
            got = self.rows(x[r % n], tgt.subset(r % n), plan,
                            [plan.conditions[i] for i in (r // n)], record_layers, heatmap)
            for key, values in got.items():
                if key not in out:
                    out[key] = values.new_zeros((k * n, *values.shape[1:]))
                out[key][r] = values
        return {key: v.reshape(k, n, *v.shape[1:]).transpose(0, 1) for key, v in out.items()}

    def _forward(self, x: Tensor, tgt: Target, plan: Plan, record: dict[str, seam.Layer]
                 ) -> tuple[seam.Pass, Tensor]:
        """The forward pass of rows ``x`` keeping the plan's and ``record``'s layers, and
        the gradient that starts the backward pass."""
        wanted = {**{lay.name: lay for lay in plan.layers}, **record}
        with torch.enable_grad():
            p = seam.forward(self.lrp, x, wanted)
            return p, p.seed(seam.start_relevance(p.output, tgt.score(p.output)))

    def rows(self, x: Tensor, tgt: Target, plan: Plan,
             conditions: Sequence[cond.Condition | None],
             record: dict[str, seam.Layer], heatmap: bool) -> dict[str, Tensor]:
        """One conditioned pass over rows ``x`` (see :meth:`_backward`)."""
        return self._backward(*self._forward(x, tgt, plan, record), plan, conditions, record,
                              heatmap)

    def _backward(self, p: seam.Pass, seed: Tensor, plan: Plan,
                  conditions: Sequence[cond.Condition | None], record: dict[str, seam.Layer],
                  heatmap: bool) -> dict[str, Tensor]:
        """The backward pass of ``p``, row ``i`` conditioned on ``conditions[i]`` (None: no
        relevance): ``heatmap`` (input relevance), ``positions`` (relevance of the
        condition's top layer per position, its channels summed), ``relevance`` (that
        layer's total: what flows through the concept) and per recorded layer
        ``layer:<name>`` (its concept relevances under the condition)."""
        out: dict[str, Tensor] = {}
        with torch.enable_grad():

            def relevance(name: str, grad: Tensor | None) -> Tensor:
                t = p.tensors[name]
                return p.relevance(name, grad if grad is not None else torch.zeros_like(t))

            def keep(name: str, grad: Tensor | None) -> None:
                out[f"layer:{name}"] = layer_stats(
                    relevance(name, grad), p.tensors[name].detach(), record[name].channel_dim,
                    ("relevance",))["relevance"]

            source, grad = p.output, seed
            above: float = float("inf")
            for stage in [*plan.layers, None]:
                below = -1 if stage is None else stage.position
                between = [n for n, lay in record.items() if below < lay.position < above]
                targets = [p.tensors[n] for n in between]
                if stage is not None:
                    targets.append(p.tensors[stage.name])
                elif heatmap:
                    targets.append(p.leaf)
                if not targets:
                    break
                grads = _grad(source, targets, grad, stage)
                for name, g in zip(between, grads, strict=False):
                    keep(name, g)
                if stage is None:
                    if heatmap:
                        out["heatmap"] = p.input_relevance(grads[-1])
                    break
                g_stage = grads[-1]
                if g_stage is None:
                    raise ValueError(_OFF_PATH.format(stage.name))
                t = p.tensors[stage.name]
                masked = g_stage * _mask(t, stage, conditions)
                if stage is plan.layers[0]:
                    at = relevance(stage.name, masked).sum(stage.channel_dim % t.dim())
                    out["positions"] = at.detach()
                    out["relevance"] = at.reshape(len(at), -1).sum(1).detach()
                for name, lay in record.items():
                    if lay.position == stage.position:
                        keep(name, masked)
                source, grad, above = t, masked, stage.position
        return out

    def statistics_rows(self, x: Tensor, tgt: Target, wanted: dict[str, seam.Layer],
                        which: Sequence[str], heatmap: bool) -> dict[str, dict[str, Tensor]]:
        """Per layer of ``wanted``: :func:`layer_stats` of one unconditioned pass over rows
        ``x``; with ``heatmap``, also the input relevance (key ``""``)."""
        with torch.enable_grad():
            p = seam.forward(self.lrp, x, wanted)
            seed = p.seed(seam.start_relevance(p.output, tgt.score(p.output)))
            names = list(wanted)
            inputs = [p.tensors[n] for n in names] + ([p.leaf] if heatmap else [])
            grads = torch.autograd.grad(p.output, inputs, seed, allow_unused=True,
                                        retain_graph=heatmap)
            out: dict[str, dict[str, Tensor]] = {}
            for name, grad in zip(names, grads, strict=False):
                t = p.tensors[name]
                g = grad if grad is not None else torch.zeros_like(t)
                act = p.activation(name) if any(w.startswith("activation") for w in which) \
                    else t.detach()
                out[name] = layer_stats(p.relevance(name, g), act, wanted[name].channel_dim,
                                        which)
            if heatmap:
                out[""] = {"heatmap": p.input_relevance(grads[-1])}
        return out

_OFF_PATH = ("no relevance reaches layer '{}' through the condition's layers above it: the "
             "layers of a condition must lie on one path from the input to the output")


def _grad(source: Tensor, targets: list[Tensor], grad: Tensor, stage: seam.Layer | None
          ) -> list[Tensor | None]:
    try:
        return list(torch.autograd.grad(source, targets, grad, allow_unused=True))
    except RuntimeError as err:
        if "does not require grad" in str(err) or "not have been used" in str(err):
            raise ValueError(_OFF_PATH.format(stage.name if stage is not None else "input")
                             ) from err
        raise


def _mask(t: Tensor, layer: seam.Layer, conditions: Sequence[cond.Condition | None]
          ) -> Tensor:
    """A 0/1 mask shaped to broadcast over ``t``: each row keeps its condition's channels
    (none for a row without a condition)."""
    dim = layer.channel_dim % t.dim()
    mask = t.new_zeros((len(conditions), t.shape[dim]))
    for row, c in enumerate(conditions):
        if c is not None:
            mask[row, list(c[layer.name])] = 1.0
    shape = [1] * t.dim()
    shape[0], shape[dim] = len(conditions), t.shape[dim]
    return mask.reshape(shape)


def layer_stats(relevance: Tensor, activation: Tensor, channel_dim: int,
                which: Sequence[str]) -> dict[str, Tensor]:
    """``(N, channels)`` sums and maxima over a layer's positions."""
    dim = channel_dim % relevance.dim()

    def flat(t: Tensor) -> Tensor:
        return t.movedim(dim, 1).reshape(t.shape[0], t.shape[dim], -1)

    out: dict[str, Tensor] = {}
    if "relevance" in which:
        out["relevance"] = flat(relevance).sum(-1)
    if "relevance_max" in which:
        out["relevance_max"] = flat(relevance).amax(-1)
    if "activation" in which:
        out["activation"] = flat(activation).sum(-1)
    if "activation_max" in which:
        out["activation_max"] = flat(activation).amax(-1)
    return out


__all__ = ["MEMORY_BUDGET", "ConditionalPasses", "Plan", "default_rows", "layer_stats"]
