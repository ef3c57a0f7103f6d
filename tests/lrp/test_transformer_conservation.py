"""Conservation on a transformer: with biases and epsilon at zero, CP-LRP passes the whole
relevance through LayerNorm, GELU, attention and the residual sums; what leaves the network
goes into the class token and the position embedding, and the report shows both sinks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lumos
from helpers import untouched
from lumos.lrp import composites

torchvision = pytest.importorskip("torchvision")


def _tiny_vit() -> nn.Module:
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=16, patch_size=4, num_layers=2, num_heads=2,
                              hidden_dim=8, mlp_dim=16, num_classes=3).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
        model.heads.head.weight.normal_()
        model.class_token.normal_()
    return model


def test_cp_attention_block_conserves_relevance_up_to_its_sinks() -> None:
    model = _tiny_vit()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with untouched(model):
        exp = lumos.LRP(model, composites.CPLRP(epsilon=0.0)).explain(x, target=1)
    layers = exp.layers
    sinks = {k: v for k, v in layers.items() if k.endswith("(sink)")}
    assert set(sinks) == {"class_token (sink)", "encoder.pos_embedding (sink)"}
    total = layers["input"] + sum(sinks.values())
    torch.testing.assert_close(total, layers["output"], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(exp.delta, -sum(sinks.values()), rtol=1e-8, atol=1e-10)
    # every residual sum, LayerNorm at the end and the head carry the whole relevance
    for name in ("heads.head", "encoder.ln", "encoder.layers.encoder_layer_1.lumos_add_4",
                 "encoder.layers.encoder_layer_0.lumos_add_1", "encoder.lumos_add"):
        torch.testing.assert_close(layers[name], layers["output"], rtol=1e-8, atol=1e-10)
    # inside a block: the MLP branch (LayerNorm, Linear, GELU, Linear) conserves its share
    block = "encoder.layers.encoder_layer_0"
    for part in ("mlp.0", "mlp.1", "mlp.3"):
        torch.testing.assert_close(layers[f"{block}.{part}"], layers[f"{block}.ln_2"],
                                   rtol=1e-8, atol=1e-10)
    # and so does the attention branch: value projection, weights . values, output projection
    for part in ("self_attention.v_proj", "self_attention.out_proj"):
        torch.testing.assert_close(layers[f"{block}.{part}"], layers[f"{block}.ln_1"],
                                   rtol=1e-8, atol=1e-10)


def test_attnlrp_sums_match_the_heatmap() -> None:
    model = _tiny_vit()
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    exp = lumos.LRP(model, composites.AttnLRP(epsilon=0.0)).explain(x, target=0)
    assert torch.isfinite(exp.attribution).all() and exp.attribution.abs().sum() > 0
    torch.testing.assert_close(exp.layers["input"], exp.attribution.sum((1, 2, 3)))


def test_no_library_class_or_function_is_patched() -> None:
    import torch.nn.functional as F

    classes = (nn.MultiheadAttention, nn.LayerNorm, nn.GroupNorm, nn.GELU, nn.Softmax, nn.Linear)
    functions = (F.scaled_dot_product_attention, F.layer_norm, F.softmax, torch.matmul)
    before = [dict(vars(c)) for c in classes]
    model = _tiny_vit()
    for composite in (composites.CPLRP(), composites.AttnLRP()):
        lumos.LRP(model, composite).explain(torch.randn(1, 3, 16, 16, dtype=torch.float64), 0)
    assert [dict(vars(c)) for c in classes] == before
    assert (F.scaled_dot_product_attention, F.layer_norm, F.softmax, torch.matmul) == functions
    assert all(isinstance(m, nn.MultiheadAttention) for m in [model.encoder.layers[0]
                                                               .self_attention])
