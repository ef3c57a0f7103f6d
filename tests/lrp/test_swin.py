"""torchvision's Swin v1/v2 under LRP (:mod:`lumos.lrp.capture.windows`), on tiny float64 models.

The window attention lumos computes for one input size equals torchvision's (padding, shifted
windows and their mask, v2's cosine attention) to 1e-12; the prepared model reproduces the
model; with biases and epsilon at zero CP-LRP passes the whole relevance to the input and the
reported sinks (relative position biases, window masks); a second input size is prepared anew;
what lumos cannot see into is refused with a clear error.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lumos
from helpers import untouched
from lumos.lrp import composites, prepare

torchvision = pytest.importorskip("torchvision")
from torchvision.models import swin_transformer as st  # noqa: E402


def _randomize(model: nn.Module, zero_bias: bool = False) -> nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale"):
                p.copy_(torch.log(torch.rand_like(p) * 20 + 1))
            elif zero_bias and name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.4)
    return model.double().eval()


def _tiny(v2: bool, zero_bias: bool = False, seed: int = 0) -> nn.Module:
    """Patch 2, window 4, three stages: 20x20 pads 10x10 maps to 12x12 and merges 5x5 to 3x3."""
    torch.manual_seed(seed)
    extra = dict(block=st.SwinTransformerBlockV2, downsample_layer=st.PatchMergingV2) if v2 \
        else {}
    model = st.SwinTransformer(patch_size=[2, 2], embed_dim=8, depths=[2, 2, 2],
                               num_heads=[2, 2, 4], window_size=[4, 4], num_classes=3,
                               **extra)  # type: ignore[arg-type]
    return _randomize(model, zero_bias)


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("side", [16, 20, 23])
def test_prepared_swin_reproduces_the_model(v2: bool, side: int) -> None:
    """16: no padding; 20: 10x10 maps padded to 12x12 windows and shifted; 23: odd sizes
    merged with padding. Prepared on one sample, run on two."""
    model = _tiny(v2)
    x = torch.randn(2, 3, side, side, dtype=torch.float64)
    with untouched(model):
        gm = prepare(model, x[:1])
        with torch.no_grad():
            torch.testing.assert_close(gm(x), model(x), rtol=1e-12, atol=1e-12)
    assert gm.lumos_input_shape == (3, side, side) and gm.lumos_batch is None
    kinds = {type(m).__name__ for m in gm.modules()}
    assert {"MatMul", "Softmax", "Constant"} <= kinds
    assert ("Normalization" in kinds) if v2 else True


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize(("side", "epsilon"), [(32, 0.0), (20, 1e-12)])
def test_cp_lrp_conserves_relevance_up_to_bias_and_mask_sinks(v2: bool, side: int,
                                                             epsilon: float) -> None:
    """32x32: no padding, epsilon 0. 20x20: padded windows, whose zero tokens have zero
    pre-activations without biases (0/0 under epsilon 0): epsilon 1e-12 there. The relative
    position biases (gathered from their tables, v2: through the bias MLP) and the shifted
    windows' masks are constants folded at preparation, and sinks."""
    model = _tiny(v2, zero_bias=True)
    x = torch.randn(2, 3, side, side, dtype=torch.float64)
    with untouched(model):
        exp = lumos.LRP(model, composites.CPLRP(epsilon=epsilon)).explain(x, target=1)
    layers = exp.layers
    sinks = {k: v for k, v in layers.items() if k.endswith("(sink)")}
    tables = {k for k in sinks if "relative_position_bias_table" in k or "cpb_mlp" in k
              or "relative_coords_table" in k}
    # one bias per attention module (6), one mask per shifted block (stages 1 and 2)
    assert len(tables) == 6 and len(sinks) == 6 + 2, sorted(sinks)
    total = layers["input"] + sum(sinks.values())
    torch.testing.assert_close(total, layers["output"], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(layers["input"], exp.attribution.sum((1, 2, 3)))


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_attnlrp_sends_relevance_into_the_sinks(v2: bool) -> None:
    model = _tiny(v2)
    x = torch.randn(1, 3, 20, 20, dtype=torch.float64)
    exp = lumos.LRP(model, composites.AttnLRP(epsilon=1e-9)).explain(x, target=0)
    assert torch.isfinite(exp.attribution).all() and exp.attribution.abs().sum() > 0
    sinks = [v for k, v in exp.layers.items() if k.endswith("(sink)")]
    assert sum(s.abs().sum() for s in sinks) > 0
    torch.testing.assert_close(exp.layers["input"], exp.attribution.sum((1, 2, 3)))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swin_t", "swin_v2_t"])
def test_torchvision_swin_at_an_odd_size(name: str) -> None:
    """72x72: 18x18 maps padded to 21x21 and shifted, 9x9 merged with padding to 5x5."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None).eval()
    x = torch.randn(1, 3, 72, 72)
    lrp = lumos.LRP(model, composites.AttnLRP())
    with untouched(model):
        relevance = lrp.attribute(x, target=3)
        with torch.no_grad():
            expected = model(x)
    assert torch.isfinite(relevance).all() and relevance.abs().sum() > 0
    with torch.no_grad():
        got = lrp.program(x).gm(x)
    torch.testing.assert_close(got, expected, rtol=0.0, atol=1e-5 * float(expected.abs().max()))


@pytest.mark.slow
def test_another_input_size_is_prepared_again() -> None:
    from lumos.lrp.engine import PROGRAMS_KEPT

    model = _tiny(False)
    lrp = lumos.LRP(model, composites.EpsilonPlus())
    seen: dict[int, object] = {}
    with untouched(model):
        for side in (16, 20, 16):
            x = torch.randn(2, 3, side, side, dtype=torch.float64)
            relevance = lrp.attribute(x, target=0)
            assert relevance.shape == x.shape and torch.isfinite(relevance).all()
            program = lrp.program(x)
            assert program.input_shape == (3, side, side)
            assert lrp.program(x) is program   # the same size reuses it
            assert seen.setdefault(side, program) is program  # alternating sizes: kept
            with torch.no_grad():
                torch.testing.assert_close(program.gm(x), model(x), rtol=1e-12, atol=1e-12)
        for side in range(24, 24 + PROGRAMS_KEPT):  # the oldest shapes make room
            lrp.program(torch.randn(1, 3, side, side, dtype=torch.float64))
        assert lrp.program(torch.randn(1, 3, 16, 16, dtype=torch.float64)) is not seen[16]
        with torch.no_grad():
            model.features[0][0].weight.mul_(2.0)  # the model changed: every program dropped
        try:
            assert lrp.program(torch.randn(1, 3, 16, 16, dtype=torch.float64)) is not seen[16]
            assert len(lrp._programs) == 1
        finally:
            with torch.no_grad():
                model.features[0][0].weight.div_(2.0)


def test_a_subclass_with_its_own_forward_is_traced_through() -> None:
    class Custom(st.ShiftedWindowAttention):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return st.shifted_window_attention(
                x * 2, self.qkv.weight, self.proj.weight, self.get_relative_position_bias(),
                self.window_size, self.num_heads, shift_size=self.shift_size,
                qkv_bias=self.qkv.bias, proj_bias=self.proj.bias, training=False)

    model = _tiny(False)
    model.features[1][0].attn = _randomize(Custom(8, [4, 4], [0, 0], num_heads=2))
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with untouched(model):
        gm = prepare(model, x[:1])
        relevance = lumos.LRP(model).attribute(x, target=0)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-12, atol=1e-12)
    assert torch.isfinite(relevance).all() and relevance.abs().sum() > 0


def test_one_module_called_at_two_sizes() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = st.ShiftedWindowAttention(8, [4, 4], [2, 2], num_heads=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([self.attn(x).flatten(1), self.attn(x[:, :4]).flatten(1)], 1)

    model = _randomize(Twice())
    x = torch.randn(2, 8, 8, 8, dtype=torch.float64)
    with untouched(model):
        gm = prepare(model, x[:1])
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x), rtol=1e-12, atol=1e-12)


def test_torchvision_is_not_patched() -> None:
    classes = (st.ShiftedWindowAttention, st.ShiftedWindowAttentionV2, st.PatchMerging,
               st.PatchMergingV2, st.SwinTransformerBlock)
    before = [dict(vars(c)) for c in classes]
    functions = (st.shifted_window_attention, st._get_relative_position_bias,
                 st._patch_merging_pad)
    model = _tiny(True)
    lumos.LRP(model, composites.AttnLRP()).explain(torch.randn(1, 3, 16, 16,
                                                               dtype=torch.float64), 0)
    assert [dict(vars(c)) for c in classes] == before
    assert (st.shifted_window_attention, st._get_relative_position_bias,
            st._patch_merging_pad) == functions
    assert type(model.features[1][0].attn) is st.ShiftedWindowAttentionV2


def test_preparing_without_an_example_is_refused() -> None:
    with pytest.raises(TypeError, match=r"example input"):
        prepare(_tiny(True))


# ---- LRP through one window attention, as dense per-token math -----------------------------
def _slots(padded: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]
           ) -> list[tuple[int, int, int]]:
    """Per window slot (windows in row-major order): the padded-map row and column it reads
    and the part of the rolled map it lies in (shift > 0 in both directions)."""
    (ph, pw), (wh, ww) = padded, window

    def part(i: int, size: int, win: int, s: int) -> int:
        return 0 if i < size - win else 1 if i < size - s else 2

    slots = []
    for win in range((ph // wh) * (pw // ww)):
        for s in range(wh * ww):
            r, c = (win // (pw // ww)) * wh + s // ww, (win % (pw // ww)) * ww + s % ww
            slots.append(((r + shift[0]) % ph, (c + shift[1]) % pw,
                          3 * part(r, ph, wh, shift[0]) + part(c, pw, ww, shift[1])))
    return slots


def _dense_lrp(attn: nn.Module, x: torch.Tensor, relevance: torch.Tensor, eps: float,
               v2: bool, attn_lrp: bool) -> torch.Tensor:
    """``x (H, W, C)``, ``relevance`` at the output ``(H, W, C)``, epsilon on qkv and proj,
    written per token and head. CP-LRP: the attention weights are constants. AttnLRP: half of
    the relevance of ``A v`` and of ``q kᵀ`` to each factor, softmax gradient times input
    ``R_s = s ⊙ (g - Σ A g)`` (the bias and mask take their share), v2's norms constant."""
    h, w, c = x.shape
    heads, d, n = attn.num_heads, c // attn.num_heads, 16
    slots = _slots((8, 8), (4, 4), (2, 2))
    real = [r < h and col < w for r, col, _ in slots]
    xs = torch.stack([x[r, col] if ok else x.new_zeros(c) for (r, col, _), ok in zip(
        slots, real, strict=True)])
    wqkv, bqkv = attn.qkv.weight, attn.qkv.bias.clone()
    if v2:
        bqkv[c:2 * c] = 0.0
    stab = lambda t: t + eps * torch.where(t >= 0, 1.0, -1.0).to(t)
    bias = attn.get_relative_position_bias()[0]
    z = xs @ wqkv.T + bqkv
    o = torch.zeros_like(xs)
    saved = []
    for win in range(len(slots) // n):
        t = slice(win * n, (win + 1) * n)
        labels = torch.tensor([slots[i][2] for i in range(win * n, (win + 1) * n)])
        mask = torch.where(labels[:, None] == labels[None, :], 0.0, -100.0)
        for head in range(heads):
            fq, fk, fv = (slice(j * c + head * d, j * c + (head + 1) * d) for j in range(3))
            q, k = z[t, fq], z[t, fk]
            norms = None
            if v2:
                norms = [u.norm(dim=1, keepdim=True).clamp_min(1e-12) for u in (q, k)]
                qs, ks = q / norms[0], k / norms[1]
                scale = float(attn.logit_scale[head].exp().clamp(max=100.0))
            else:
                qs, ks, scale = q * d ** -0.5, k, 1.0
            a = torch.softmax(scale * (qs @ ks.T) + bias[head] + mask, 1)
            o[t, fq] = a @ z[t, fv]
            saved.append((t, fq, fk, fv, a, qs, ks, scale, norms))
    y = o @ attn.proj.weight.T + attn.proj.bias
    ry = torch.stack([relevance[r, col] if ok else x.new_zeros(c) for (r, col, _), ok in zip(
        slots, real, strict=True)])
    go = (ry / stab(y)) @ attn.proj.weight    # relevance at o is o * go
    share = 0.5 if attn_lrp else 1.0
    gz = torch.zeros_like(z)                  # relevance at z is z * gz
    for t, fq, fk, fv, a, qs, ks, scale, norms in saved:
        gz[t, fv] = share * (a.T @ go[t, fq])
        if attn_lrp:
            ga = share * (go[t, fq] @ z[t, fv].T)
            gs = scale * a * (ga - (a * ga).sum(1, keepdim=True))
            gq, gk = 0.5 * gs @ ks, 0.5 * gs.T @ qs
            gz[t, fq], gz[t, fk] = (gq / norms[0], gk / norms[1]) if norms else \
                (gq * d ** -0.5, gk)
    rx = xs * (((z * gz) / stab(z)) @ wqkv)
    out = torch.zeros_like(x)
    for (r, col, _), ok, value in zip(slots, real, rx, strict=True):
        if ok:
            out[r, col] = value
    return out


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("attn_lrp", [False, True], ids=["CPLRP", "AttnLRP"])
def test_lrp_through_window_attention_equals_dense_math(v2: bool, attn_lrp: bool) -> None:
    """A 5x7 map padded to 8x8, windows 4x4 shifted by 2: the heatmap equals the formula
    written per token and head."""
    torch.manual_seed(2)
    cls = st.ShiftedWindowAttentionV2 if v2 else st.ShiftedWindowAttention
    attn = _randomize(cls(8, [4, 4], [2, 2], num_heads=2))
    model = nn.Sequential(attn, nn.Flatten(1))
    x = torch.randn(1, 5, 7, 8, dtype=torch.float64)
    seed = torch.randn(1, 5 * 7 * 8, dtype=torch.float64)
    composite = (composites.AttnLRP if attn_lrp else composites.CPLRP)(epsilon=1e-3)
    with untouched(model):
        got = lumos.LRP(model, composite).attribute(x, relevance=seed)
    with torch.no_grad():
        expected = _dense_lrp(attn, x[0], seed.reshape(5, 7, 8), 1e-3, v2, attn_lrp)
    torch.testing.assert_close(got[0], expected, rtol=1e-9, atol=1e-12)
