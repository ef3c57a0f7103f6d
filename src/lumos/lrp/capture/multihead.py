"""``nn.MultiheadAttention`` in the private copy, as operations the op vocabulary has rules for.

torch computes multi-head attention in one function (``F.multi_head_attention_forward``, or a
fused kernel) that a capture records as one opaque call. Before the capture, every
``nn.MultiheadAttention`` of the *private* copy is replaced by :class:`AttentionOps`, which
computes the same with projections (:class:`~lumos.lrp.ops.attention.Projection`, reading views
of the model's own weights), :class:`~lumos.lrp.ops.attention.MatMul`, softmax and reshapes.
Nothing outside the copy changes: no library is patched.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lumos.lrp.errors import LRPUnsupportedError
from lumos.lrp.ops.attention import Projection


def _linear(weight: Tensor, bias: Tensor | None) -> Projection:
    """A :class:`Projection` reading ``weight`` and ``bias`` (views of the model's tensors)."""
    layer = Projection(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    layer.weight = nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        layer.bias = nn.Parameter(bias, requires_grad=False)
    return layer


class AttentionOps(nn.Module):
    """Computes what an ``nn.MultiheadAttention`` computes (eval mode, batched inputs, no masks),
    as projections, :class:`MatMul`, softmax and reshapes that LRP preparation can trace.

    Parameters
    ----------
    mha : nn.MultiheadAttention
        The module of the private copy it replaces; the projections become :class:`Projection`
        layers.
    """

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        if mha.bias_k is not None or mha.add_zero_attn:
            raise LRPUnsupportedError("nn.MultiheadAttention with add_bias_kv or add_zero_attn "
                                      "has no LRP rule: build it without them")
        e = mha.embed_dim
        if mha.in_proj_weight is not None:
            wq, wk, wv = mha.in_proj_weight.detach().split(e)
        else:
            wq, wk, wv = (w.detach() for w in (mha.q_proj_weight, mha.k_proj_weight,
                                                mha.v_proj_weight))
        bq = bk = bv = None
        if mha.in_proj_bias is not None:
            bq, bk, bv = mha.in_proj_bias.detach().split(e)
        self.q_proj, self.k_proj, self.v_proj = _linear(wq, bq), _linear(wk, bk), _linear(wv, bv)
        out = mha.out_proj
        self.out_proj = _linear(out.weight.detach(),
                                None if out.bias is None else out.bias.detach())
        self.heads, self.head_dim, self.batch_first = mha.num_heads, mha.head_dim, mha.batch_first

    def _split(self, t: Tensor) -> Tensor:
        return t.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None = None, need_weights: bool = True,
                attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        if key_padding_mask is not None or attn_mask is not None or is_causal:
            raise LRPUnsupportedError("nn.MultiheadAttention with a mask has no LRP rule yet: "
                                      "call it without key_padding_mask, attn_mask, is_causal")
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        q, k, v = (self._split(p(t)) for p, t in ((self.q_proj, query), (self.k_proj, key),
                                                  (self.v_proj, value)))
        weights = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.head_dim ** -0.5,
                                dim=-1)
        out = self.out_proj(torch.matmul(weights, v).transpose(1, 2).flatten(2))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, weights.mean(1) if average_attn_weights else weights


def decompose_attention(model: nn.Module) -> None:
    """Replace every ``nn.MultiheadAttention`` inside ``model`` (a private copy) in place."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.MultiheadAttention):
                setattr(module, child_name, AttentionOps(child))


__all__ = ["AttentionOps", "decompose_attention"]
