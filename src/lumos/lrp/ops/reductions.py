"""Reductions over dimensions: sums and extrema (``x.sum(d)``, ``x.max(d)``, ``amax``).

- :class:`Summation` (``torch.sum``, ``Tensor.sum``): a sum pool; relevance is split in
  proportion to the summands (the Norm rule), or follows the gradient (``R_i = x_i R / y``
  summed over ``i`` is ``R``: it conserves).
- :class:`Extremum` (``amax`` / ``amin``, the values of ``max`` / ``min`` along a dimension):
  winner takes all, like max pooling (the gradient rule: ``R_winner = x_w g = y g = R``).
  The indices of ``max(x, d)`` are positions, not activations: they carry no relevance
  (:class:`~lumos.lrp.ops.elementwise.Detached`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, fx, nn

from lumos.lrp.capture.graph import PrepGraph
from lumos.lrp.ops.elementwise import Detached, detach_node
from lumos.lrp.ops.handlers import Handler, bind, op_name


def _dims(dims: Any) -> int | tuple[int, ...] | None:
    return tuple(dims) if isinstance(dims, Sequence) else dims


class Summation(nn.Module):
    """``x.sum(dims, keepdim)``; ``dims`` None sums every element."""

    def __init__(self, dims: int | Sequence[int] | None, keepdim: bool = False) -> None:
        super().__init__()
        self.dims, self.keepdim = _dims(dims), keepdim

    def forward(self, x: Tensor) -> Tensor:
        return x.sum() if self.dims is None else x.sum(self.dims, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, keepdim={self.keepdim}"


class Extremum(nn.Module):
    """``x.amax(dims, keepdim)`` (``largest=False``: ``amin``): the winner of each reduction."""

    def __init__(self, dims: int | Sequence[int] | None, keepdim: bool = False,
                 largest: bool = True) -> None:
        super().__init__()
        self.dims, self.keepdim, self.largest = _dims(dims), keepdim, largest

    def forward(self, x: Tensor) -> Tensor:
        fn = torch.amax if self.largest else torch.amin
        if self.dims is None:
            return fn(x)
        return fn(x, self.dims, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"{'max' if self.largest else 'min'}, dims={self.dims}, keepdim={self.keepdim}"


def summation(g: PrepGraph, node: fx.Node) -> None:
    """``x.sum(dim, keepdim)`` of activations becomes :class:`Summation`."""
    params = bind(g, node, ("dim", "keepdim"))
    if params.pop("dtype", None) is not None:
        raise g.error(node, f"{op_name(node)} with a dtype", "cast before summing")
    g.replace(node, Summation(params.get("dim"), bool(params.get("keepdim", False))),
              (node.args[0],))


def extremum(largest: bool) -> Handler:
    """``amax`` / ``max(x)`` / ``max(x, d)`` (``largest=False``: the minimum)."""
    def handle(g: PrepGraph, node: fx.Node) -> None:
        x = node.args[0]
        params = bind(g, node, ("dim", "keepdim"))
        if g.is_tensor(params.get("dim")) or "other" in params:
            raise g.error(node, f"{op_name(node)} of two activations",
                          "take the maximum over a dimension of one tensor")
        name = getattr(node.target, "__name__", str(node.target))
        paired = "dim" in params and name in ("max", "min")   # (values, indices)
        module = Extremum(params.get("dim"), bool(params.get("keepdim", False)), largest)
        if not paired:
            g.replace(node, module, (x,))
            return
        for user in list(node.users):
            index = user.args[1] if user.target is operator.getitem else \
                ("values", "indices").index(str(user.args[1]))
            if index == 0:
                g.replace(user, Extremum(module.dims, module.keepdim, largest), (x,))
            else:
                _indices(g, user, x, params, largest)
        if not node.users:
            g.graph.erase_node(node)
    return handle


def _indices(g: PrepGraph, user: fx.Node, x: Any, params: dict[str, Any],
             largest: bool) -> None:
    fn = torch.argmax if largest else torch.argmin
    new = g.replace(user, Detached(fn, "argmax" if largest else "argmin",
                                   dim=params["dim"], keepdim=bool(params.get("keepdim"))),
                    (x,))
    g.detached.add(new)


def handlers() -> dict[Any, Handler]:
    """The reductions' entries for :mod:`lumos.lrp.ops.canonize`'s table."""
    table: dict[Any, Handler] = dict.fromkeys((torch.sum, "sum"), summation)
    table.update(dict.fromkeys((torch.amax, "amax", torch.max, "max"), extremum(True)))
    table.update(dict.fromkeys((torch.amin, "amin", torch.min, "min"), extremum(False)))
    table.update(dict.fromkeys((torch.argmax, "argmax", torch.argmin, "argmin"), detach_node))
    return table


__all__ = ["Extremum", "Summation", "extremum", "handlers", "summation"]
