"""Every image classifier of Hugging Face ``transformers``, built offline from a small config.

:func:`classes` lists the classes of ``AutoModelForImageClassification``'s mapping
(transformers 4.57: 50 classes of 45 model types); :data:`CONFIGS` gives each model type a
small config (a few thousand to a few hundred thousand parameters) and an input side;
:func:`build` makes one with random weights (seeded). Three classes do not build offline
(:data:`NOT_BUILT`: NAT and DiNAT need the ``natten`` library, transformers' ViT-Hybrid fails
in its own weight initialisation) and three build but do not classify a batch of images
(:data:`NOT_IMAGES`: they take token ids or patch sequences), which leaves 44.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            image_size=32, patch_size=8)
_SWIN = dict(image_size=32, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
             window_size=4)
_TWO_STAGES = dict(depths=[1, 1], hidden_sizes=[16, 32])
_SEGFORMER = dict(depths=[1, 1], hidden_sizes=[16, 32], num_attention_heads=[1, 2],
                  num_encoder_blocks=2, patch_sizes=[7, 3], strides=[4, 2], mlp_ratios=[2, 2])
_CVT = dict(embed_dim=[16, 32], num_heads=[1, 2], depth=[1, 2], patch_sizes=[7, 3],
            patch_stride=[4, 2], patch_padding=[2, 1], mlp_ratio=[2.0, 2.0],
            attention_drop_rate=[0.0, 0.0], drop_rate=[0.0, 0.0], drop_path_rate=[0.0, 0.0],
            qkv_bias=[True, True], cls_token=[False, True],
            qkv_projection_method=["dw_bn", "dw_bn"], kernel_qkv=[3, 3], padding_kv=[1, 1],
            stride_kv=[2, 2], padding_q=[1, 1], stride_q=[1, 1])
_LEVIT = dict(image_size=64, hidden_sizes=[16, 32, 48], num_attention_heads=[2, 2, 2],
              depths=[1, 1, 1], key_dim=[8, 8, 8], mlp_ratio=[2, 2, 2],
              attention_ratio=[2, 2, 2], patch_size=16)
_HGNET = dict(stem_channels=[3, 8, 16], stage_in_channels=[16, 32], stage_mid_channels=[8, 16],
              stage_out_channels=[32, 64], stage_num_blocks=[1, 1],
              stage_downsample=[False, True], stage_light_block=[False, True],
              stage_kernel_size=[3, 3], stage_numb_of_layers=[2, 2], depths=[1, 1],
              hidden_sizes=[32, 64], embedding_size=16)
_TEXTNET = dict(image_size=[32, 32], stem_out_channels=8,
                conv_layer_kernel_sizes=[[[3, 3]], [[3, 3]], [[3, 3]], [[3, 3]]],
                conv_layer_strides=[[1], [2], [2], [2]], hidden_sizes=[8, 8, 16, 16, 32],
                depths=[1, 1, 1, 1])
_GEMMA = dict(text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                               num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                               vocab_size=300, max_position_embeddings=64),
              vision_config=dict(_VIT, num_hidden_layers=1), mm_tokens_per_image=4)

#: Model type -> (small config, input side).
CONFIGS: dict[str, tuple[dict[str, Any], int]] = {
    "beit": (dict(_VIT, use_relative_position_bias=True), 32),
    "bit": (dict(_TWO_STAGES, embedding_size=16, num_groups=8), 32),
    "clip": (dict(vision_config=_VIT), 32),
    "convnext": (dict(_TWO_STAGES, num_stages=2), 32),
    "convnextv2": (dict(_TWO_STAGES, num_stages=2), 32),
    "cvt": (_CVT, 32),
    "data2vec-vision": (dict(_VIT, use_relative_position_bias=True), 32),
    "deit": (_VIT, 32),
    "dinat": (dict(embed_dim=16, depths=[1, 1], num_heads=[2, 2], kernel_size=3), 32),
    "dinov2": (_VIT, 32),
    "dinov2_with_registers": (dict(_VIT, num_register_tokens=2), 32),
    "donut-swin": (_SWIN, 32),
    "efficientformer": (dict(depths=[1, 1, 1, 2], hidden_sizes=[16, 16, 32, 32], dim=32,
                             key_dim=8, attention_ratio=2, num_attention_heads=2, resolution=2,
                             image_size=64, hidden_size=32), 64),
    "efficientnet": (dict(image_size=32, width_coefficient=0.25, depth_coefficient=0.25,
                          hidden_dim=320), 32),
    "focalnet": (dict(_TWO_STAGES, embed_dim=16, focal_levels=[2, 2], focal_windows=[3, 3],
                      image_size=32, patch_size=4), 32),
    "hgnet_v2": (_HGNET, 32),
    "hiera": (dict(embed_dim=16, image_size=[32, 32], patch_size=[3, 3], patch_stride=[2, 2],
                   patch_padding=[1, 1], depths=[1, 1], num_heads=[1, 2], query_stride=[2, 2],
                   masked_unit_size=[4, 4], masked_unit_attention=[True, False],
                   num_query_pool=1, mlp_ratio=2.0), 32),
    "ijepa": (_VIT, 32),
    "imagegpt": (dict(n_embd=32, n_layer=2, n_head=2, n_positions=64, vocab_size=17), 8),
    "levit": (_LEVIT, 64),
    "metaclip_2": (dict(vision_config=_VIT), 32),
    "mobilenet_v1": (dict(depth_multiplier=0.25, image_size=32), 32),
    "mobilenet_v2": (dict(depth_multiplier=0.25, image_size=32), 32),
    "mobilevit": (dict(image_size=64, hidden_sizes=[16, 24, 32], num_attention_heads=2,
                       neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64], patch_size=2), 64),
    "mobilevitv2": (dict(image_size=64, width_multiplier=0.25, patch_size=2), 64),
    "nat": (dict(embed_dim=16, depths=[1, 1], num_heads=[2, 2], kernel_size=3), 32),
    "perceiver": (dict(d_model=32, d_latents=32, num_latents=8, num_blocks=1,
                       num_self_attends_per_block=1, num_self_attention_heads=2,
                       num_cross_attention_heads=1, image_size=32), 32),
    "poolformer": (dict(_TWO_STAGES, num_encoder_blocks=2, patch_sizes=[7, 3], strides=[4, 2],
                        padding=[2, 1]), 32),
    "pvt": (dict(_SEGFORMER, image_size=32, sequence_reduction_ratios=[2, 1],
                 patch_sizes=[4, 2]), 32),
    "pvt_v2": (dict(_SEGFORMER, image_size=32, sr_ratios=[2, 1]), 32),
    "regnet": (dict(_TWO_STAGES, embedding_size=16, groups_width=8), 32),
    "resnet": (dict(_TWO_STAGES, embedding_size=16), 32),
    "segformer": (dict(_SEGFORMER, sr_ratios=[2, 1], decoder_hidden_size=32), 32),
    "shieldgemma2": (_GEMMA, 32),
    "siglip": (dict(vision_config=_VIT), 32),
    "siglip2": (dict(vision_config=dict(_VIT, num_patches=16)), 32),
    "swiftformer": (dict(depths=[1, 1, 1, 1], embed_dims=[16, 16, 32, 32], mlp_ratio=2), 32),
    "swin": (_SWIN, 32),
    "swinv2": (_SWIN, 32),
    "textnet": (_TEXTNET, 32),
    "timm_wrapper": (dict(architecture="resnet18", num_classes=10), 32),
    "van": (dict(_TWO_STAGES, image_size=32, patch_sizes=[7, 3], strides=[4, 2],
                 mlp_ratios=[2, 2]), 32),
    "vit": (_VIT, 32),
    "vit_hybrid": (dict(_VIT, patch_size=1, backbone_config=dict(
        model_type="bit", depths=[1, 1], hidden_sizes=[16, 32], embedding_size=16, num_groups=8,
        layer_type="bottleneck", global_padding="same", out_features=["stage2"])), 32),
    "vit_msn": (_VIT, 32),
}
#: Classes that do not build offline here, and why.
NOT_BUILT = {"DinatForImageClassification": "needs the natten library",
             "NatForImageClassification": "needs the natten library",
             "ViTHybridForImageClassification": "transformers' own weight init fails"}
#: Classes that build but take no batch of images (token ids, patch sequences).
NOT_IMAGES = ("ImageGPTForImageClassification", "ShieldGemma2ForImageClassification",
              "Siglip2ForImageClassification")


def classes() -> list[tuple[str, str]]:
    """``(model type, class name)`` for every class of the image-classification mapping."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES as MAPPING,
    )

    return [(kind, name) for kind, names in MAPPING.items()
            for name in ([names] if isinstance(names, str) else names)]


def build(kind: str, name: str, seed: int = 0) -> tuple[nn.Module, int]:
    """``(model, input side)``: class ``name`` of model type ``kind``, small, random, eval."""
    import transformers

    kwargs, side = CONFIGS[kind]
    config = transformers.AutoConfig.for_model(kind, num_labels=5, **kwargs)
    torch.manual_seed(seed)
    model: nn.Module = getattr(transformers, name)(config).eval()
    return model, side
