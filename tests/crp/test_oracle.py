"""Must show 1: lumos's conditional heatmaps and concept relevances equal zennit-crp 0.6's
``CondAttribution`` (with Zennit's canonizers) to 1e-6 relative, in float64.

VGG-16 (its 13 convolutions as torchvision builds them, the classifier replaced by a small
one on pooled features: the 25,088 x 4,096 x 4,096 classifier in float64 would take 1 GB in
each process and no concept layer lies in it) and ResNet-18 with random weights and
BatchNorm statistics taken from random inputs, 32x32 inputs; ``EpsilonPlus`` and
``EpsilonGammaBox``; 16 channels of each of two layers, one two-layer condition, the
unconditional concept relevances of both layers and the relevances of the lower layer under
each concept of the upper one. zennit-crp runs in a subprocess (:mod:`zcrp`).
"""

from __future__ import annotations

import pytest
import torch
import zcrp
from torch import Tensor, nn

from helpers import untouched
from lumos.crp import CRP
from lumos.lrp import composites

torchvision = pytest.importorskip("torchvision")
pytestmark = pytest.mark.skipif(zcrp.folder() is None, reason="zennit-crp not installed "
                                "(make zennit-crp)")

TOLERANCE = 1e-6
TARGET = 3
#: model name -> (builder, Zennit canonizer, upper layer, lower layer)
MODELS: dict[str, tuple[str, str, str, str]] = {
    "vgg16": ("vgg16", "vgg", "features.28", "features.21"),
    "resnet18": ("resnet18", "resnet", "layer4.0.conv2", "layer3"),
}
LUMOS = {"EpsilonPlus": lambda: composites.EpsilonPlus(),
         "EpsilonGammaBox": lambda: composites.EpsilonGammaBox(low=-3.0, high=3.0)}


def calibrated(name: str, size: int = 32, seed: int = 0, small_head: bool = False
               ) -> nn.Module:
    """A torchvision model with random weights whose BatchNorm statistics come from random
    inputs (train-mode passes), in float64 and eval mode. ``small_head``: VGG's classifier
    on pooled features (its convolutions unchanged), not three layers on 25,088 of them."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10)
    if small_head and hasattr(model, "classifier"):
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        model.classifier = nn.Sequential(nn.Flatten(), nn.Linear(512, 64), nn.ReLU(),
                                         nn.Linear(64, 10))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # the plain average of the batches
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, size, size))
    return model.double().eval()


def relative(got: Tensor, want: Tensor) -> float:
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-300))


def channels(relevance: Tensor, seed: int) -> list[int]:
    """16 channels drawn at random among those with nonzero relevance."""
    alive = relevance.nonzero()[:, 0]
    gen = torch.Generator().manual_seed(seed)
    return sorted(alive[torch.randperm(len(alive), generator=gen)[:16]].tolist())


def compare(model: nn.Module, canonizer: str, upper: str, lower: str, size: int
            ) -> dict[str, dict[str, float]]:
    """Relative differences of every compared quantity, per composite (one zennit-crp
    process for all of them)."""
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    jobs, mine = [], []
    for name, make in LUMOS.items():
        crp = CRP(model, make())
        with untouched(model):
            rel = crp.concept_relevance(x, TARGET, layers=[upper, lower])
        picks = {upper: channels(rel[upper][0], 2), lower: channels(rel[lower][0], 3)}
        # the two-layer condition: the upper layer's most relevant channel and the lower
        # layer's most relevant channel under it (a dead pair would give zeros)
        top = int(rel[upper][0].argmax())
        given = crp.concept_relevance(x, TARGET, layers=[lower], conditions=[{upper: top}])
        pair = {upper: top, lower: int(given[lower][0, 0].argmax())}
        conditions = {layer: [{layer: c} for c in picks[layer]] for layer in picks}
        jobs += [zcrp.job(x, TARGET, conditions[upper], name, canonizer, record=[lower]),
                 zcrp.job(x, TARGET, conditions[lower], name, canonizer),
                 zcrp.job(x, TARGET, [pair], name, canonizer),
                 zcrp.job(x, TARGET, [{}], name, canonizer, record=[upper, lower])]
        with untouched(model):
            mine.append({
                "upper": crp.attribute(x, TARGET, conditions=conditions[upper])[0],
                "lower": crp.attribute(x, TARGET, conditions=conditions[lower])[0],
                "pair": crp.attribute(x, TARGET, conditions=[pair])[0], "rel": rel,
                "given": crp.concept_relevance(x, TARGET, layers=[lower],
                                               conditions=conditions[upper])[lower][0]})
    answers = zcrp.run(model, jobs)
    report: dict[str, dict[str, float]] = {}
    for i, name in enumerate(LUMOS):
        got, want = mine[i], answers[4 * i:4 * i + 4]
        for key, answer in (("upper", want[0]), ("lower", want[1]), ("pair", want[2])):
            assert float(answer["heatmap"].abs().amax(dim=(1, 2, 3)).min()) > 0, key
        report[name] = {
            f"heatmaps {upper}": relative(got["upper"], want[0]["heatmap"]),
            f"heatmaps {lower}": relative(got["lower"], want[1]["heatmap"]),
            "two-layer condition": relative(got["pair"], want[2]["heatmap"]),
            f"relevance {upper}": relative(got["rel"][upper],
                                           zcrp.channel_sums(want[3]["relevances"][upper])),
            f"relevance {lower}": relative(got["rel"][lower],
                                           zcrp.channel_sums(want[3]["relevances"][lower])),
            f"relevance {lower} | {upper}": relative(
                got["given"], zcrp.channel_sums(want[0]["relevances"][lower])),
        }
    return report


@pytest.mark.slow
@pytest.mark.parametrize("model_name", MODELS)
def test_conditional_heatmaps_equal_zennit_crp(model_name: str) -> None:
    builder, canonizer, upper, lower = MODELS[model_name]
    report = compare(calibrated(builder, small_head=True), canonizer, upper, lower, size=32)
    print(model_name, report)
    for composite, values in report.items():
        for what, value in values.items():
            assert value < TOLERANCE, f"{model_name} {composite} {what}: {value:.2e}"
