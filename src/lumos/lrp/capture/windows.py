"""torchvision's Swin v1/v2 window attention and patch merging, as operations LRP can trace.

torchvision computes a Swin block's attention in one function (``shifted_window_attention``) and
the padding of its patch merging in another (``_patch_merging_pad``), both hidden from torch.fx
(``torch.fx.wrap``); their padding, cyclic shift and attention mask depend on the size of the
feature map. Preparation records the input shape of each such module of the *private* copy on the
example input (:func:`record_shapes`) and replaces the module by one that computes the same for
that shape with operations the existing rules cover (:func:`decompose_windows`):

- zero padding to window multiples, the cyclic shift (``torch.roll``), window partition and
  reverse, cropping, and patch merging's strided slices: rearrangements
  (:class:`~lumos.lrp.ops.layers.Reshape`, :class:`~lumos.lrp.ops.layers.Concat`);
- ``qkv`` and ``proj``: the model's ``nn.Linear`` layers (in v2 the key bias is zero, as
  torchvision computes it);
- the scores ``q kᵀ`` and ``weights · v``: :class:`~lumos.lrp.ops.attention.MatMul`; the softmax:
  ``nn.Softmax`` (AttnLRP's rule, or CP-LRP's constant weights);
- v1: ``q * head_dim ** -0.5`` (:class:`~lumos.lrp.ops.attention.Scale`); v2's cosine attention:
  ``q`` and ``k`` through an ``l2`` :class:`~lumos.lrp.ops.norms.Normalization` (its norm a constant
  under the identity rule), the scores times the clamped ``exp(logit_scale)`` (a constant
  multiplier, ``Scale``);
- the relative position bias (v2: ``16 sigmoid(cpb_mlp(table))``) and the shifted-window mask
  (-100 between tokens from different parts of the rolled map): additive constants computed
  once, relevance *sinks* that :meth:`lumos.LRP.explain` reports as
  ``"<module>.relative_position_bias (sink)"`` and ``"<module>.attn_mask (sink)"``.

The prepared graph then holds for that spatial size only: :func:`lumos.lrp.capture.prepare.prepare`
marks it (``gm.lumos_input_shape``) and :class:`lumos.LRP` prepares again for an input of another
size. Nothing outside the private copy changes (torchvision is not patched).
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from lumos.lrp.capture.graph import PrepGraph
from lumos.lrp.errors import LRPUnsupportedError
from lumos.lrp.ops.attention import MatMul, Scale
from lumos.lrp.ops.norms import Normalization

_MODULE = "torchvision.models.swin_transformer"
#: Mask value torchvision adds between tokens of different parts of a shifted window.
_MASKED = -100.0


def _classes() -> tuple[type[nn.Module], ...]:
    """torchvision's (attention v1, attention v2, merging v1, merging v2) once it is imported;
    a model cannot hold them before."""
    st = sys.modules.get(_MODULE)
    if st is None:
        return ()
    return (st.ShiftedWindowAttention, st.ShiftedWindowAttentionV2, st.PatchMerging,
            st.PatchMergingV2)


def _forward_owner(m: nn.Module) -> type:
    return next(c for c in type(m).__mro__ if "forward" in vars(c))


def _windowed(model: nn.Module) -> dict[str, nn.Module]:
    classes = _classes()
    if not classes:
        return {}
    return {name: m for name, m in model.named_modules() if isinstance(m, classes)}


@contextlib.contextmanager
def record_shapes(model: nn.Module) -> Iterator[dict[str, list[tuple[int, ...]]]]:
    """Collect, per module path, the input shapes of torchvision's Swin attention and patch
    merging modules in ``model`` (the private copy) while the block runs it."""
    shapes: dict[str, list[tuple[int, ...]]] = {}

    def hook(name: str) -> Any:
        def record(module: nn.Module, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], Tensor):
                shapes.setdefault(name, []).append(tuple(args[0].shape))
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in _windowed(model).items()]
    try:
        yield shapes
    finally:
        for handle in handles:
            handle.remove()


class WindowAttention(nn.Module):
    """What torchvision's ``ShiftedWindowAttention`` (``cosine``: ``…V2``) computes in eval mode
    on inputs ``(N, H, W, C)`` of one spatial size, as traceable operations.

    Parameters
    ----------
    attn : nn.Module
        The torchvision module of the private copy; its ``qkv`` and ``proj`` layers are reused.
    shape : tuple of int
        The input shape ``(N, H, W, C)`` it was called with (``N`` may differ later).
    cosine : bool
        Swin v2's scaled cosine attention.
    """

    attn_mask: Tensor | None
    qkv: nn.Linear
    proj: nn.Linear

    def __init__(self, attn: Any, shape: tuple[int, ...], cosine: bool) -> None:
        super().__init__()
        _, h, w, c = shape
        wh, ww = (int(s) for s in attn.window_size)
        ph, pw = h + (-h % wh), w + (-w % ww)
        shift = (0 if wh >= ph else int(attn.shift_size[0]),
                 0 if ww >= pw else int(attn.shift_size[1]))
        self.size, self.padded, self.window, self.shift = (h, w), (ph, pw), (wh, ww), shift
        self.heads, self.dim, self.cosine = int(attn.num_heads), c, cosine
        self.windows = (ph // wh) * (pw // ww)
        self.qkv, self.proj = attn.qkv, attn.proj
        with torch.no_grad():
            if cosine and self.qkv.bias is not None:   # torchvision ignores the key bias
                self.qkv.bias[c:2 * c].zero_()
            bias = attn.get_relative_position_bias().detach().clone()
        self.register_buffer("relative_position_bias", bias)
        head_dim = c // self.heads
        if cosine:
            self.q_norm = Normalization("l2", (head_dim,), 1e-12, None, None)
            self.k_norm = Normalization("l2", (head_dim,), 1e-12, None, None)
            self.register_buffer("logit_scale", torch.clamp(
                attn.logit_scale.detach(), max=math.log(100.0)).exp())
            self.scale = Scale(1.0)
        else:
            self.scale = Scale(head_dim ** -0.5)
        self.scores, self.softmax, self.mix = MatMul(transpose_b=True), nn.Softmax(-1), MatMul()
        mask = shift_mask(self.padded, self.window, shift) if any(shift) else None
        self.register_buffer("attn_mask", None if mask is None else mask.to(bias))

    def _partition(self, x: Tensor) -> Tensor:
        (ph, pw), (wh, ww) = self.padded, self.window
        x = x.reshape(-1, ph // wh, wh, pw // ww, ww, self.dim).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(-1, wh * ww, self.dim)

    def _reverse(self, x: Tensor) -> Tensor:
        (ph, pw), (wh, ww) = self.padded, self.window
        x = x.reshape(-1, ph // wh, pw // ww, wh, ww, self.dim).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(-1, ph, pw, self.dim)

    def forward(self, x: Tensor) -> Tensor:
        (h, w), (ph, pw), (sh, sw) = self.size, self.padded, self.shift
        n, heads = self.window[0] * self.window[1], self.heads
        if (ph, pw) != (h, w):
            x = F.pad(x, (0, 0, 0, pw - w, 0, ph - h))
        if sh or sw:
            x = torch.roll(x, (-sh, -sw), (1, 2))
        x = self._partition(x)
        qkv = self.qkv(x).reshape(-1, n, 3, heads, self.dim // heads)   # samples first
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        if self.cosine:
            scores = self.scale(self.scores(self.q_norm(q), self.k_norm(k)), self.logit_scale)
        else:
            scores = self.scores(self.scale(q), k)
        # added with the sample first, so that the sinks are read per sample
        scores = scores.reshape(-1, self.windows, heads, n, n) + self.relative_position_bias
        if sh or sw:
            scores = scores + self.attn_mask
        scores = scores.reshape(-1, heads, n, n)
        x = self.mix(self.softmax(scores), v).transpose(1, 2).reshape(-1, n, self.dim)
        x = self._reverse(self.proj(x))
        if sh or sw:
            x = torch.roll(x, (sh, sw), (1, 2))
        if (ph, pw) != (h, w):
            x = x[:, :h, :w, :]
        return x

    def extra_repr(self) -> str:
        return (f"size={self.size}, window={self.window}, shift={self.shift}, "
                f"heads={self.heads}, cosine={self.cosine}")


def shift_mask(padded: tuple[int, int], window: tuple[int, int],
               shift: tuple[int, int]) -> Tensor:
    """The additive mask ``(windows, 1, n, n)`` of shifted-window attention: 0 between tokens
    that come from the same part of the rolled feature map, -100 otherwise."""
    (ph, pw), (wh, ww) = padded, window
    part = torch.zeros(ph, pw)
    rows = (slice(0, -wh), slice(-wh, -shift[0]), slice(-shift[0], None))
    cols = (slice(0, -ww), slice(-ww, -shift[1]), slice(-shift[1], None))
    for i, r in enumerate(rows):
        for j, col in enumerate(cols):
            part[r, col] = 3 * i + j
    part = part.reshape(ph // wh, wh, pw // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)
    differs = part.unsqueeze(1) != part.unsqueeze(2)
    return torch.where(differs, _MASKED, 0.0).unsqueeze(1)


class PatchMerging(nn.Module):
    """torchvision's ``PatchMerging`` (``norm_last``: ``PatchMergingV2``) for inputs
    ``(..., H, W, C)`` of one spatial size: zero padding to even sides, the four strided
    sub-grids concatenated, then LayerNorm and reduction (v2: reduction, then LayerNorm)."""

    norm: nn.Module
    reduction: nn.Module

    def __init__(self, merge: Any, shape: tuple[int, ...], norm_last: bool) -> None:
        super().__init__()
        h, w = shape[-3], shape[-2]
        self.pad = (0, 0, 0, w % 2, 0, h % 2)
        self.norm, self.reduction, self.norm_last = merge.norm, merge.reduction, norm_last

    def forward(self, x: Tensor) -> Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        x = torch.cat([x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :], x[..., 0::2, 1::2, :],
                       x[..., 1::2, 1::2, :]], -1)
        if self.norm_last:
            return self.norm(self.reduction(x))
        return self.reduction(self.norm(x))


def decompose_windows(model: nn.Module, shapes: dict[str, list[tuple[int, ...]]] | None) -> bool:
    """Replace torchvision's Swin attention and patch merging inside ``model`` (a private copy)
    in place, for the input shapes :func:`record_shapes` saw (``None``: no example was run).

    Returns
    -------
    bool
        Whether anything was replaced: the model is then specialised to the example's size.

    Raises
    ------
    LRPUnsupportedError
        No example input, or a module called with two different shapes.
    """
    classes = _classes()
    if not classes:
        return False
    replaced = False
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            owner = _forward_owner(child)
            if owner not in classes:   # not torchvision's, or an own forward: traced as it is
                continue
            path = f"{parent_name}.{child_name}" if parent_name else child_name
            seen = set((shapes or {}).get(path, []))
            if shapes is None:
                raise LRPUnsupportedError(
                    f"torchvision's {owner.__name__} at '{path}' depends on the input size: "
                    "prepare the model with an example input (prepare(model, example))")
            if not seen:
                continue   # never called: not in the traced graph either
            if len(seen) > 1:
                raise LRPUnsupportedError(
                    f"torchvision's {owner.__name__} at '{path}' was called with inputs of "
                    f"several shapes {sorted(seen)}; LRP needs one shape per module")
            shape = seen.pop()
            new: nn.Module
            if owner in classes[:2]:
                new = WindowAttention(child, shape, cosine=owner is classes[1])
            else:
                new = PatchMerging(child, shape, norm_last=owner is classes[3])
            setattr(parent, child_name, new)
            replaced = True
    return replaced


def _refuse(g: PrepGraph, node: fx.Node) -> None:
    name = getattr(node.target, "__name__", str(node.target))
    raise g.error(node, f"operation {_MODULE}.{name} called from a forward that lumos does not "
                  "know (a subclass that overrides forward?)",
                  "lumos replaces torchvision's own ShiftedWindowAttention(V2) and "
                  "PatchMerging(V2) modules; keep their forward, or write the attention with "
                  "traceable operations (matmul, softmax, roll, reshape)")


#: torchvision's Swin functions that torch.fx cannot see into (for :mod:`lumos.lrp.ops.canonize`).
FUNCTIONS_BY_NAME: dict[str, Any] = {
    f"{_MODULE}.{name}": _refuse
    for name in ("shifted_window_attention", "_get_relative_position_bias",
                 "_patch_merging_pad")}

__all__ = ["FUNCTIONS_BY_NAME", "PatchMerging", "WindowAttention", "decompose_windows",
           "record_shapes", "shift_mask"]
