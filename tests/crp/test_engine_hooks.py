"""lumos.CRP agrees with the LRP engine's own relevance hooks (``lumos.lrp.engine.concepts``) where
both apply: the relevance a hook reads at a layer's output is CRP's concept relevance, and a
hook's channel mask at a layer every path passes through gives CRP's conditional heatmap.

Where they differ is by design: a concept path (a condition on two layers) in CRP keeps only the
relevance that passed through the upper concept (zennit-crp's default), while masks at both
layers in one pass also let through what went around the upper layer on a residual shortcut.
"""

from __future__ import annotations

import pytest
from torch import Tensor, nn

import lumos
from lumos.crp import CRP
from lumos.lrp import composites

torchvision = pytest.importorskip("torchvision")
concepts = pytest.importorskip("lumos.lrp.engine.concepts")


def relative(got: Tensor, want: Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max())


def test_crp_equals_the_engine_hooks(resnet18_float64: tuple[nn.Module, Tensor]) -> None:
    model, x = resnet18_float64
    composite = composites.EpsilonGammaBox(low=-3.0, high=3.0)
    crp, lrp = CRP(model, composite), lumos.LRP(model, composite)
    layer = "layer3"
    seen: dict[str, Tensor] = {}
    hook = concepts.RelevanceHook(read=lambda r: seen.__setitem__("r", r))
    heat = concepts.attribute_with_hooks(lrp, x, 1, {layer: hook})
    assert relative(heat, lrp.attribute(x, 1)) < 1e-12
    rel = crp.concept_relevance(x, 1, layers=layer)[layer]
    assert relative(seen["r"].sum((2, 3)), rel) < 1e-9
    # one alive channel per sample, masked by the hook and conditioned on by CRP
    picks = rel.abs().argmax(1)
    mask = concepts.channel_mask(picks, rel.shape[1], 1, 4)
    masked = concepts.attribute_with_hooks(lrp, x, 1, {layer: concepts.RelevanceHook(mask=mask)})
    mine = crp.explain_each(x, 1, [{layer: int(c)} for c in picks])[0]
    assert relative(masked, mine) < 1e-9
