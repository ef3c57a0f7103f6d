"""Layers with signed inputs: the z+ denominator in one extra pass, and gradients by sign.

LRP-z+ on inputs of both signs needs ``d = W+ x+ + W- x- + B`` (``B``: the terms' biases). Since
``W+ x+ + W- x- = (W x + |W| |x|) / 2`` and the layer's own output ``z = W x + b`` is already
computed, ``d = (z + |W| |x| + 2 B - b) / 2``: one forward pass with ``|W|`` on ``|x|`` (its
bias ``2 B - b``) instead of one each for ``W+ x+`` and ``W- x-``. The backward pass is unchanged
(``W+^T`` and ``W-^T`` of the share, picked by the sign of ``x``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lumos.lrp.ops import LinearOp
from lumos.lrp.rules import NEGATIVE, POSITIVE, Term

#: ``|W| = 2 W+ - W`` as a parameter modifier.
ABSOLUTE = (-1.0, 2.0)


def zplus_pair(active: list[Term]) -> tuple[Term, Term] | None:
    """The (positive, negative) terms when ``active`` is exactly z+ on a signed input."""
    if len(active) != 2:
        return None
    pos, neg = sorted(active, key=lambda t: t.inputs != "pos")
    if (pos.inputs, pos.weight, neg.inputs, neg.weight) != ("pos", POSITIVE, "neg", NEGATIVE):
        return None
    if pos.group != neg.group or any(t.sign != 1.0 or t.coef != 1.0 for t in active):
        return None
    return pos, neg


def zplus_denominator(op: LinearOp, x: Tensor, z: Tensor, pair: tuple[Term, Term],
                      cache: dict[tuple[object, ...], Tensor | None]) -> Tensor:
    """``W+ x+ + W- x- + B`` from ``z = W x + b`` and one pass of ``|W|`` on ``|x|``."""
    key = (pair[0].bias, pair[1].bias)
    if key not in cache:
        biases = [op.param("bias", t.bias) for t in pair]
        total = None
        for b in biases:
            if b is not None:
                total = 2 * b if total is None else total + 2 * b
        if op.bias is not None:
            total = -op.bias if total is None else total - op.bias
        cache[key] = total
    weight = op.param("weight", ABSOLUTE)
    assert weight is not None
    q = op.forward(x.abs(), weight, cache[key])
    return q.add_(z).mul_(0.5)


def by_sign(x: Tensor, parts: dict[str, Tensor]) -> Tensor | None:
    """``g_x`` from the parts of terms reading ``x``, ``x+`` (counts where ``x > 0``) and ``x-``
    (where ``x < 0``); where ``x == 0`` the input has no relevance, whichever part is picked."""
    pos, neg, plain = parts.get("pos"), parts.get("neg"), parts.get("x")
    if pos is not None:
        signed = torch.where(x > 0, pos, 0.0 if neg is None else neg)
    elif neg is not None:
        signed = torch.where(x < 0, neg, 0.0)
    else:
        return plain
    return signed if plain is None else plain + signed
