"""CRP speed: lumos against zennit-crp 0.6, and concept relevances against one LRP call.

Two ratios, each the median over interleaved rounds (both sides timed back to back in every
round, so the machine's load hits both alike), torchvision ResNet-50 with random weights
(BatchNorm statistics from random inputs), one random 224x224 image, two CPU threads:

1. **Conditional heatmaps of 64 concepts** of one layer (default ``layer3.1.conv2``, its
   first 64 channels), ``EpsilonPlus`` with Zennit's ResNet canonizer on zennit-crp's side:
   lumos ``CRP.attribute(x, t, layer=L, concepts=range(64))`` against zennit-crp's
   ``CondAttribution.generate`` (its path for many conditions of one sample: one forward
   pass, the backward graph kept for every batch of conditions), both with the same
   ``--batch`` rows per pass. Must be at most 0.5. The two sides' heatmaps are compared so
   the work is the same (in float32 over ResNet-50's 53 layers they differ by a few 1e-4 of
   the largest value; the oracle test shows 1e-6 in float64).
2. **Concept relevances of every channel of 3 layers** (default ``layer2 layer3 layer4``,
   the block outputs: 3,584 concepts) with ``CRP.concept_relevance`` against one
   ``lumos.LRP.attribute`` call of the same model and input. Must be at most 1.5.

zennit-crp pins ``zennit<=0.4.6`` and ``torch<2``; ``make zennit-crp`` installs it with zennit
0.5.1 into ``.venv/zennit-crp``, which this script puts at the end of ``sys.path`` (or the
folder ``$LUMOS_ZENNIT_CRP`` names).

    .venv/bin/python bench/crp_speed.py [--repeats 3] [--size 224] [--batch 16]
        [--layer layer3.1.conv2] [--concepts 64] [--layers layer2 layer3 layer4]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]


def _zennit_crp() -> None:
    folder = Path(os.environ.get("LUMOS_ZENNIT_CRP", ROOT / ".venv" / "zennit-crp"))
    if not (folder / "crp" / "attribution.py").is_file():
        sys.exit(f"zennit-crp is not installed in {folder}: run `make zennit-crp`")
    sys.path.append(str(folder))


def _model(seed: int = 0) -> nn.Module:
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.resnet50(weights=None)
    model.train()
    with torch.no_grad():  # BatchNorm statistics of random inputs (at init they are 0 and 1)
        for _ in range(2):
            model(torch.randn(4, 3, 128, 128))
        for m in model.modules():  # eps into running_var, the same function: Zennit's merge
            if isinstance(m, nn.BatchNorm2d) and m.running_var is not None:  # leaves eps out
                m.running_var.add_(m.eps)
                m.eps = 0.0
    return model.eval()


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _summary(times: list[float]) -> str:
    return f"{statistics.median(times):.2f}s"


def _ratio(mine: list[float], theirs: list[float]) -> tuple[float, str]:
    ratios = sorted(a / b for a, b in zip(mine, theirs, strict=True))
    med = statistics.median(ratios)
    return med, f"{med:.3f}x [{ratios[0]:.3f}-{ratios[-1]:.3f}]"


def heatmaps(model: nn.Module, x: Tensor, target: int, layer: str, concepts: int,
             batch: int, repeats: int) -> float:
    """Must show 3a: 64 conditional heatmaps, lumos over zennit-crp."""
    from crp.attribution import CondAttribution
    from zennit.composites import EpsilonPlus
    from zennit.torchvision import ResNetCanonizer

    from lumos.crp import CRP
    from lumos.lrp import composites

    # zennit-crp sets requires_grad False on the model's parameters: its own copy
    attribution = CondAttribution(copy.deepcopy(model))
    conditions = [{layer: [c], "y": [target]} for c in range(concepts)]

    def zennit_crp() -> Tensor:
        composite = EpsilonPlus(canonizers=[ResNetCanonizer()])
        leaf = x.detach().clone().requires_grad_(True)
        parts = attribution.generate(leaf, conditions, composite, batch_size=batch,
                                     verbose=False)
        return torch.cat([part.heatmap for part in parts])  # (concepts, H, W)

    crp = CRP(model, composites.EpsilonPlus())

    def lumos_crp() -> Tensor:
        return crp.attribute(x, target, layer=layer, concepts=range(concepts),
                             batch_size=batch)[0].sum(1)

    lumos_crp()  # prepare lumos's model copy once (kept inside the CRP object)
    mine, theirs = [], []
    for r in range(repeats):
        t_z, h_z = _timed(zennit_crp)
        t_l, h_l = _timed(lumos_crp)
        theirs.append(t_z)
        mine.append(t_l)
        if r == 0:
            diff = float((h_l - h_z).abs().max() / h_z.abs().max())
            print(f"  heatmaps agree: max |lumos - zennit-crp| / max |zennit-crp| = {diff:.1e} "
                  "(float32; tests/crp/test_oracle.py: 1e-6 in float64)")
            if diff > 1e-2:
                sys.exit("lumos and zennit-crp computed different heatmaps: not the same work")
    med, text = _ratio(mine, theirs)
    size = f"{x.shape[-2]}x{x.shape[-1]}"
    print(f"resnet50 {size} batch 1, {concepts} concepts of {layer}, {batch} rows per pass, "
          f"{repeats} rounds: zennit-crp {_summary(theirs)} | lumos {_summary(mine)} = {text}"
          f" (must be <= 0.5: {'PASS' if med <= 0.5 else 'FAIL'})")
    return med


def relevances(model: nn.Module, x: Tensor, target: int, layers: list[str],
               repeats: int) -> float:
    """Must show 3b: every concept relevance of three layers, over one LRP call."""
    import lumos
    from lumos.crp import CRP
    from lumos.lrp import composites

    crp = CRP(model, composites.EpsilonPlus())
    lrp = lumos.LRP(model, composites.EpsilonPlus())
    crp.concept_relevance(x, target, layers=layers)
    lrp.attribute(x, target=target)
    mine, theirs = [], []
    for _ in range(repeats):
        t_l, _ = _timed(lambda: lrp.attribute(x, target=target))
        t_c, rel = _timed(lambda: crp.concept_relevance(x, target, layers=layers))
        theirs.append(t_l)
        mine.append(t_c)
    channels = sum(int(r.shape[1]) for r in rel.values())
    med, text = _ratio(mine, theirs)
    size = f"{x.shape[-2]}x{x.shape[-1]}"
    print(f"resnet50 {size} batch {len(x)}, concept relevances of {', '.join(layers)} "
          f"({channels} concepts), {repeats} rounds: LRP {_summary(theirs)} | concept "
          f"relevances {_summary(mine)} = {text} (must be <= 1.5: "
          f"{'PASS' if med <= 1.5 else 'FAIL'})")
    return med


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16, help="rows per pass, both sides")
    parser.add_argument("--layer", default="layer3.1.conv2")
    parser.add_argument("--concepts", type=int, default=64)
    parser.add_argument("--layers", nargs="+", default=["layer2", "layer3", "layer4"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-heatmaps", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    _zennit_crp()
    model = _model()
    x = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = int(model(x).argmax())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, target {target}")
    ok = True
    if not args.skip_heatmaps:
        ok &= heatmaps(model, x, target, args.layer, args.concepts, args.batch,
                       args.repeats) <= 0.5
    ok &= relevances(model, x, target, args.layers, max(args.repeats, 5)) <= 1.5
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
