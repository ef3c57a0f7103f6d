"""Leaf modules of a traced model: keep supported ones (out-of-place), rewrite or drop the rest.

:func:`lumos.lrp.ops.canonize.canonize_modules` dispatches each ``call_module`` node here: padding,
flatten and unflatten modules become :class:`~lumos.lrp.ops.layers.Reshape`, ``nn.Upsample``
:class:`~lumos.lrp.ops.layers.Resample`, in-place activations are made out-of-place and convolutions
with non-zero padding modes get their padding as a separate step.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from lumos.lrp.capture.graph import PrepGraph
from lumos.lrp.ops.handlers import pad_with_constant
from lumos.lrp.ops.layers import LINEAR_LAYERS, Resample, Reshape

#: Padding modules that copy border elements, with their ``F.pad`` mode.
COPY_PADS: dict[type[nn.Module], str] = {
    nn.modules.padding._ReflectionPadNd: "reflect",
    nn.modules.padding._ReplicationPadNd: "replicate",
    nn.modules.padding._CircularPadNd: "circular",
}


def check_leaf(g: PrepGraph, node: fx.Node, module: Any) -> None:
    if getattr(module, "return_indices", False):
        raise g.error(node, f"{type(module).__name__} with return_indices=True",
                      "drop return_indices; unpooling has no LRP rule")
    if isinstance(module, LINEAR_LAYERS[1:]) and module.padding_mode != "zeros":
        _split_padding(g, node, module)
    if getattr(module, "inplace", False):
        module.inplace = False   # module belongs to the private copy
        g.after_inplace(node.args[0], node)


def _split_padding(g: PrepGraph, node: fx.Node, conv: Any) -> None:
    """A conv with reflect / replicate / circular padding becomes an explicit pad (which only
    copies elements: a :class:`Reshape`) followed by the conv without padding."""
    pad = partial(F.pad, pad=tuple(conv._reversed_padding_repeated_twice),
                  mode=conv.padding_mode)
    target = str(node.target)
    with g.graph.inserting_before(node):
        padded = g.graph.call_module(g.add_module(f"{target}_pad", Reshape(pad, "pad"), target),
                                     (node.args[0],))
    padded.meta = dict(node.meta)
    node.args = (padded,)
    conv.padding = (0,) * len(conv.kernel_size)   # conv belongs to the private copy
    conv.padding_mode = "zeros"


def module_to_reshape(g: PrepGraph, node: fx.Node, module: Any) -> None:
    fn: Callable[..., Any]
    if isinstance(module, nn.Flatten):
        fn = partial(torch.flatten, start_dim=module.start_dim, end_dim=module.end_dim)
    elif isinstance(module, nn.Unflatten):
        fn = partial(torch.unflatten, dim=module.dim, sizes=module.unflattened_size)
    elif isinstance(module, nn.modules.padding._ConstantPadNd):
        if module.value != 0:
            pad_with_constant(g, node, node.args[0], module.padding, module.value)
            del g.modules[str(node.target)]
            return
        fn = partial(F.pad, pad=tuple(module.padding), mode="constant", value=0.0)
    else:
        mode = next(m for kind, m in COPY_PADS.items() if isinstance(module, kind))
        fn = partial(F.pad, pad=tuple(module.padding), mode=mode)
    target = str(node.target)
    del g.modules[target]
    g.replace(node, Reshape(fn, type(module).__name__), (node.args[0],), name=target)


def upsample_to_resample(g: PrepGraph, node: fx.Node, module: nn.Upsample) -> None:
    """``nn.Upsample`` (and its nearest / bilinear subclasses) becomes :class:`Resample`."""
    kwargs = {"size": module.size, "scale_factor": module.scale_factor, "mode": module.mode,
              "align_corners": module.align_corners,
              "recompute_scale_factor": module.recompute_scale_factor}
    target = str(node.target)
    del g.modules[target]
    g.replace(node, Resample(**kwargs), (node.args[0],), name=target)
