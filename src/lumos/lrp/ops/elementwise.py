"""Element-wise operations without weights: powers, casts, and values that carry no relevance.

- :class:`Power` (``x ** p``, ``torch.square``): a product of ``p`` identical factors. Each
  factor takes ``1/p`` of the relevance (the uniform product rule), so all of it returns to
  ``x``: relevance passes unchanged, as through an activation (the Pass rule, ``R_x = R_y``).
- Casts (``x.to(dtype)``, ``x.float()``, ``x.type_as(y)``) move values into another dtype:
  a rearrangement (relevance follows the gradient); casts that change nothing disappear.
- :class:`Detached`: an operation whose output LRP treats as a constant, so no relevance flows
  into its inputs: norms that normalise (``x / x.norm(...)``, ConvNeXt-V2's GRN, standard
  deviations, ``rsqrt`` of a mean square: AttnLRP's identity rule for normalisation treats
  ``1 / std`` the same way), comparisons and masks, ``argmax``, ``detach``. What is computed
  from detached values alone stays a plain operation of the prepared graph, and a product of an
  activation with such a value is linear in the activation, which takes all of the relevance.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from lumos.lrp.capture.graph import PrepGraph, node_inputs
from lumos.lrp.ops.handlers import Handler, op_name
from lumos.lrp.ops.layers import Reshape


class Power(nn.Module):
    """``x ** exponent`` for a number ``exponent``."""

    def __init__(self, exponent: float) -> None:
        super().__init__()
        self.exponent = exponent

    def forward(self, x: Tensor) -> Tensor:
        return x ** self.exponent

    def extra_repr(self) -> str:
        return f"exponent={self.exponent}"


class Detached(nn.Module):
    """An operation whose output carries no relevance (see the module docstring).

    Parameters
    ----------
    fn : callable
        The operation, called as ``fn(*args, **kwargs, **fixed)``.
    op : str
        Its readable name.
    **fixed
        Constant keyword arguments.
    """

    def __init__(self, fn: Callable[..., Any], op: str, **fixed: Any) -> None:
        super().__init__()
        self.fn, self.op, self.fixed = fn, op, fixed

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs, **self.fixed)

    def extra_repr(self) -> str:
        return self.op


def _function(node: fx.Node) -> Callable[..., Any]:
    if node.op == "call_method":
        return getattr(torch.Tensor, str(node.target))
    target: Any = node.target
    return target


def detach_node(g: PrepGraph, node: fx.Node) -> None:
    """Turn ``node`` into a :class:`Detached` call (its output carries no relevance)."""
    name = op_name(node).rsplit(".", 1)[-1]
    new = g.replace(node, Detached(_function(node), name), node.args, dict(node.kwargs))
    g.detached.add(new)


def power(g: PrepGraph, node: fx.Node) -> None:
    """``x ** p``, ``x.pow(p)``, ``torch.square(x)`` of an activation with a number ``p``."""
    x = node.args[0]
    name = getattr(node.target, "__name__", str(node.target))
    exponent: Any = 2 if "square" in name else (node.args[1] if len(node.args) > 1
                                                 else node.kwargs.get("exponent"))
    if not g.is_live(x) or isinstance(exponent, (fx.Node, bool)) or \
            not isinstance(exponent, (int, float)):
        raise g.error(node, f"{op_name(node)} with an exponent computed in the graph (or of a "
                      "number to the power of an activation)", "raise activations to a "
                      "constant power")
    new = g.replace(node, Power(exponent), (x,))
    if name in ("pow_", "square_", "ipow"):
        g.after_inplace(x, new)


def cast(g: PrepGraph, node: fx.Node) -> None:
    """``x.to(...)``, ``x.float()``, ``x.type_as(y)``, ``x.clone()``: nothing, or a cast."""
    x = node.args[0]
    before, after = g.value(x), g.value(node)
    if not isinstance(before, Tensor) or not isinstance(after, Tensor):
        raise g.error(node, f"{op_name(node)} whose result is not a tensor",
                      "cast tensors to tensors")
    if after.dtype == before.dtype and after.device == before.device:
        g.bypass(node, x)
    elif not after.is_floating_point():
        new = g.replace(node, Detached(partial(Tensor.to, dtype=after.dtype), "to"), (x,))
        g.detached.add(new)
    else:
        fn = partial(Tensor.to, device=after.device, dtype=after.dtype)
        g.replace(node, Reshape(fn, f"to({after.dtype})"), (x,))


def unfold(g: PrepGraph, node: fx.Node) -> None:
    """``F.unfold`` (``nn.Unfold``) and ``Tensor.unfold``: patches are copies of elements;
    ``F.fold`` puts them back, summing where they overlap (a linear map without weights)."""
    extra = (node.args[1:], node.kwargs)
    if any(g.is_tensor(n) for n in node_inputs(extra)):
        raise g.error(node, f"{op_name(node)} with sizes computed from activations",
                      "unfold with constant sizes")
    fn: Any = node.target if node.op == "call_function" else Tensor.unfold
    g.replace(node, Reshape(fn, getattr(fn, "__name__", "unfold")), node.args,
              dict(node.kwargs))


#: Operations whose output carries no relevance (for :mod:`lumos.lrp.ops.canonize`).
DETACHED: tuple[Any, ...] = (
    torch.norm, "norm", torch.linalg.vector_norm, torch.linalg.norm, torch.std, "std",
    torch.var, "var", torch.rsqrt, "rsqrt", torch.sqrt, "sqrt", torch.reciprocal, "reciprocal",
    torch.std_mean, torch.var_mean, operator.gt, operator.lt, operator.ge, operator.le,
    operator.eq, operator.ne, operator.invert, torch.gt, torch.lt, torch.ge, torch.le, torch.eq,
    torch.ne, "gt", "lt", "ge", "le", "eq", "ne", torch.logical_and, torch.logical_or,
    torch.logical_not, torch.isnan, torch.isinf, torch.isfinite, torch.sign, "sign",
    torch.floor, torch.ceil, torch.round, "floor", "ceil", "round", "detach", torch.detach,
    "bool", "long", "int")
CASTS: tuple[Any, ...] = ("to", "type", "type_as", "float", "double", "half", "bfloat16", "cpu",
                          "cuda", "clone", torch.clone)


def handlers() -> dict[Any, Handler]:
    """The entries of this module for :mod:`lumos.lrp.ops.canonize`'s table."""
    table: dict[Any, Handler] = dict.fromkeys(DETACHED, detach_node)
    table.update(dict.fromkeys(CASTS, cast))
    table.update(dict.fromkeys((operator.pow, torch.pow, "pow", torch.square, "square"), power))
    table.update(dict.fromkeys((F.unfold, "unfold", F.fold), unfold))
    return table


__all__ = ["CASTS", "DETACHED", "Detached", "Power", "cast", "detach_node", "handlers",
           "power", "unfold"]
