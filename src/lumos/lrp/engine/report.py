"""What LRP reports besides the heatmap: per-layer conservation, sinks and side relevance.

:func:`conservation_report` turns what one explained run recorded (relevance entering each
layer, relevance flowing into constants) into the per-sample sums of
:attr:`lumos.Explanation.layers`; :func:`side_relevance` adds up the relevance of rule terms that
do not scale with the input (ZBox bounds, Flat), carried back to the model input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor


def side_relevance(sides: Iterable[tuple[Tensor, list[Tensor]]],
                   leaf: Tensor) -> Tensor | None:
    """Relevance of constant-input terms (ZBox, Flat), carried back through reshapes."""
    total: Tensor | None = None
    for tensor, parts in sides:
        if not parts:
            continue
        side = torch.stack(parts).sum(0) if len(parts) > 1 else parts[0]
        if tensor is not leaf:
            (side,) = torch.autograd.grad(tensor, leaf, side, retain_graph=True)
        total = side if total is None else total + side
    return total


def broken_layer(layers: dict[str, Tensor], finite: bool) -> str | None:
    """The first layer from the output whose relevance is not finite (``finite`` False), or
    where it becomes zero for good (every layer from there to the input carries none); None
    when the report shows neither."""
    names = [k for k in layers if k != "output" and not k.endswith("(sink)")]
    if not finite:
        bad = [k for k in names if not bool(torch.isfinite(layers[k]).all())]
        return bad[0] if bad else None
    alive = [i for i, k in enumerate(names) if bool((layers[k] != 0).all())]
    last = alive[-1] if alive else -1
    return names[last + 1] if last + 1 < len(names) and names[last + 1] != "input" else None


def absorbed_layer(layers: dict[str, Tensor], sample: int,
                   negligible: float) -> tuple[str, float] | None:
    """Where one sample's relevance was worn away rather than cut: walking from the output, the
    layer passing on the smallest fraction of what it receives, up to the first layer whose
    relevance is below ``negligible`` times the output's but not zero (``(name, fraction)``).
    None when the relevance never becomes negligible, or drops from a sizeable value straight
    to exactly zero (a cut, which :func:`broken_layer` locates)."""
    total = float(layers["output"][sample].abs())
    names = [k for k in layers if k != "output" and not k.endswith("(sink)")]
    previous, worst = total, None
    for name in names:
        current = float(layers[name][sample].abs())
        fraction = current / previous if previous > 0 else 1.0
        if worst is None or fraction < worst[1]:
            worst = (name, fraction)
        if current <= negligible * total:
            return worst if current > 0 else None
        previous = current
    return None


def conservation_report(program: Any, state: Any, start: Tensor, attribution: Tensor,
                        sink_grads: Sequence[Tensor | None]) -> dict[str, Tensor]:
    """Per-layer relevance sums, from the output to the input, and the sinks (see
    :meth:`lumos.LRP.explain`)."""
    layers = {"output": start}
    n = len(attribution)
    for node in reversed(list(state.records)):
        parts = list(state.records[node])
        _, side = state.sides.get(node, (None, []))
        parts += [s.reshape(len(s), -1).sum(1) for s in side]
        if not parts:
            continue
        name = program.name(node)
        key, i = name, 2
        while key in layers:
            key, i = f"{name}#{i}", i + 1
        # per sample; layers that fold windows into the batch (Swin) have n * k rows
        layers[key] = torch.stack([p.reshape(n, -1).sum(1) for p in parts]).sum(0).detach()
    for (root, tensor), grad in zip(state.sinks.values(), sink_grads, strict=True):
        key = f"{program.name(root)} (sink)"
        value = (tensor.detach() * grad).reshape(n, -1).sum(1) if grad is not None else \
            attribution.new_zeros(n)
        layers[key] = layers[key] + value if key in layers else value
    layers["input"] = attribution.reshape(len(attribution), -1).sum(1)
    return layers
