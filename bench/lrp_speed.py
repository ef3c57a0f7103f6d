"""LRP speed: lumos vs Zennit, each as a multiple of one plain input gradient, same run.

Runs torchvision VGG-16 and ResNet-18 (random weights, eval mode) on a batch of 4 random
224x224 images with two CPU threads, EpsilonGammaBox(-3, 3) in both libraries (Zennit with its
VGG / ResNet canonizers). Transformer rows: ``vit_b_16`` runs lumos ``CPLRP()`` beside LXT 2.1's
efficient CP-LRP (its torchvision ViT patches and Zennit ``Epsilon(1e-6)`` on Linear / Conv2d;
LXT patches classes globally, so the bench applies its patches for LXT's own calls only and
restores them after each); ``convnext_tiny`` runs lumos ``EpsilonPlus()`` (no Zennit canonizer
exists for it). The timed calls are interleaved round by round; each ratio is the
median (and quartiles) over rounds of a call's time over the same round's gradient, so machine
load hits both sides of a ratio alike. lumos runs its private copy with channels-last
weights on CPU (oneDNN's faster layout), so the gradient of a channels-last copy of the model is
printed as a second reference. lumos prepares its model copy once, outside the
timing (it is cached inside the LRP object); Zennit registers its hooks inside the timing, as its
context manager does on every use.

EfficientNet-B0 (squeeze-excitation gates, SiLU, stochastic depth) and ResNet-50 get rows of
their own (``--gated``): lumos ``EpsilonPlus`` against the plain gradient only, as Zennit has no
rule for the gates; their BatchNorm statistics are first taken from random inputs (at init an
EfficientNet's activations collapse). ``--hf`` adds Hugging Face's ``ViTForImageClassification``
at its default config (ViT-B/16, 224x224, eager attention as given), lumos ``CPLRP()`` against
its gradient. ``--prepare`` prints lumos's preparation time (a fresh ``LRP``'s first call less
its second call; median over rounds) for the models named.

    .venv/bin/python bench/lrp_speed.py [--repeats 9] [--size 224] [--batch 4]
        [--models vgg16 resnet18] [--gated efficientnet_b0 resnet50] [--hf]
        [--prepare vit_b_16 resnet50]
        [--batch 2 --models vit_b_16 convnext_tiny --gated]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn


def _gradient(model: nn.Module, x: Tensor, target: int) -> Tensor:
    from lumos.lrp.capture.outputs import logits_of

    leaf = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(logits_of(model(leaf))[:, target].sum(), leaf)
    return grad


def _zennit(model: nn.Module, name: str) -> Callable[[Tensor, int], Tensor]:
    from zennit.attribution import Gradient as ZennitGradient
    from zennit.composites import EpsilonGammaBox
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    canonizer = ResNetCanonizer() if name.startswith("resnet") else VGGCanonizer()

    def run(x: Tensor, target: int) -> Tensor:
        composite = EpsilonGammaBox(low=-3.0, high=3.0, canonizers=[canonizer])
        with ZennitGradient(model, composite) as attributor:
            _, relevance = attributor(
                x, lambda out: torch.eye(out.shape[1], dtype=out.dtype)[[target] * len(out)] * out)
        return relevance
    return run


def _lumos(model: nn.Module, composite: object = None) -> Callable[[Tensor, int], Tensor]:
    import lumos
    from lumos.lrp import composites

    if composite is None:
        composite = composites.EpsilonGammaBox(low=-3.0, high=3.0)
    lrp = lumos.LRP(model, composite=composite)  # type: ignore[arg-type]
    return lambda x, target: lrp.attribute(x, target=target)


def _lxt(model: nn.Module) -> Callable[[Tensor, int], Tensor]:
    """LXT's efficient CP-LRP for torchvision's ViT, its global patches live during calls only."""
    from lxt.efficient import monkey_patch, monkey_patch_zennit
    from torchvision.models import vision_transformer
    from zennit.composites import LayerMapComposite
    from zennit.core import BasicHook
    from zennit.rules import Epsilon

    patched = (nn.GELU, nn.LayerNorm, nn.MultiheadAttention, BasicHook)
    names = ("forward", "backward", "original_forward")
    before = [{n: vars(c)[n] for n in names if n in vars(c)} for c in patched]
    monkey_patch(vision_transformer)
    monkey_patch_zennit()
    after = [{n: vars(c)[n] for n in names if n in vars(c)} for c in patched]

    def apply(states: list[dict[str, object]]) -> None:
        for cls, state in zip(patched, states, strict=True):
            for n in names:
                if n in state:
                    setattr(cls, n, state[n])
                elif n in vars(cls):
                    delattr(cls, n)

    apply(before)

    def run(x: Tensor, target: int) -> Tensor:
        apply(after)
        composite = LayerMapComposite([(nn.Linear, Epsilon(1e-6)), (nn.Conv2d, Epsilon(1e-6))])
        try:
            leaf = x.detach().requires_grad_(True)
            with composite.context(model):
                model(leaf)[:, target].sum().backward()
            assert leaf.grad is not None
            return leaf * leaf.grad
        finally:
            apply(before)
    return run


def _timed(fn: Callable[[Tensor, int], Tensor], x: Tensor) -> float:
    start = time.perf_counter()
    fn(x, 1)
    return time.perf_counter() - start


def _rounds(calls: dict[str, Callable[[Tensor, int], Tensor]], x: Tensor, repeats: int,
            ) -> dict[str, list[float]]:
    """Each call's seconds per round after one warm-up call each (lumos prepares its copy
    there); the calls alternate within a round, so a drift in machine load hits all alike."""
    for fn in calls.values():
        fn(x, 1)
    times: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(repeats):
        for key, fn in calls.items():
            times[key].append(_timed(fn, x))
    return times


def bench(name: str, repeats: int, batch: int, size: int) -> None:
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(batch, 3, size, size)
    # lumos runs its private copy with channels-last weights on CPU; the same layout for the
    # user's model is a fair second reference
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    calls = {"gradient": lambda x, t: _gradient(model, x, t), "lumos": _lumos(model),
             "gradient_cl": lambda x, t: _gradient(model_cl, x, t)}
    if name.startswith("vit"):
        from lumos.lrp import composites
        with torch.no_grad():   # torchvision initialises the head to zero
            model.heads.head.weight.normal_(0.0, 0.02)
        calls["lumos"] = _lumos(model, composites.CPLRP())
        calls["zennit"] = _lxt(model)
    elif name.startswith("convnext"):
        from lumos.lrp import composites
        calls["lumos"] = _lumos(model, composites.EpsilonPlus())
    else:
        calls["zennit"] = _zennit(model, name)
    times = _rounds(calls, x, repeats)
    med = {key: statistics.median(values) for key, values in times.items()}

    def ratio(key: str, base: str = "gradient") -> str:
        # paired: each round's time over the same round's reference, so slow drifts in machine
        # load cancel; median and quartiles over the rounds
        pairs = [a / b for a, b in zip(times[key], times[base], strict=True)]
        q1, q2, q3 = statistics.quantiles(pairs, n=4) if len(pairs) > 1 else pairs * 3
        return f"{q2:.2f}x [{q1:.2f}-{q3:.2f}]"

    other = ("" if "zennit" not in calls else
             f" | {'lxt' if name.startswith('vit') else 'zennit'} {med['zennit']:.3f}s = "
             f"{ratio('zennit')}")
    print(f"{name:9s} batch {batch} {size}x{size}, {torch.get_num_threads()} threads, "
          f"{repeats} rounds: gradient {med['gradient']:.3f}s{other} | lumos "
          f"{med['lumos']:.3f}s = {ratio('lumos')}", flush=True)
    print(f"{'':9s} gradient of a channels-last copy {med['gradient_cl']:.3f}s: lumos = "
          f"{ratio('lumos', 'gradient_cl')} of that", flush=True)


def calibrated(model: nn.Module, size: int) -> nn.Module:
    """Eval mode with BatchNorm statistics of random inputs: at torchvision's init an
    EfficientNet's activations collapse (logits ~1e-15, float32 relevance exactly 0), which
    would time LRP on a degenerate model."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # the plain average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, size, size))
    return model.eval()


def bench_gated(name: str, repeats: int, batch: int, size: int) -> None:
    """One row for a CNN with squeeze-excitation gates (EfficientNet): lumos EpsilonPlus against
    the plain gradient, interleaved round by round (Zennit has no rule for the gates)."""
    import torchvision

    import lumos
    from lumos.lrp import composites

    torch.manual_seed(0)
    model = calibrated(getattr(torchvision.models, name)(weights=None), size)
    x = torch.randn(batch, 3, size, size)
    lrp = lumos.LRP(model, composite=composites.EpsilonPlus())
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    calls = {"gradient": lambda x, t: _gradient(model, x, t),
             "gradient_cl": lambda x, t: _gradient(model_cl, x, t),
             "lumos": lambda x, t: lrp.attribute(x, target=t)}
    times = _rounds(calls, x, repeats)
    pairs = {base: [a / b for a, b in zip(times["lumos"], times[base], strict=True)]
             for base in ("gradient", "gradient_cl")}
    med = {key: statistics.median(values) for key, values in times.items()}
    print(f"{name} batch {batch} {size}x{size}, {torch.get_num_threads()} threads, {repeats} "
          f"rounds: gradient {med['gradient']:.3f}s | lumos EpsilonPlus {med['lumos']:.3f}s = "
          f"{statistics.median(pairs['gradient']):.2f}x (channels-last gradient "
          f"{med['gradient_cl']:.3f}s: {statistics.median(pairs['gradient_cl']):.2f}x)",
          flush=True)


def _paired(calls: dict[str, Callable[[Tensor, int], Tensor]], x: Tensor, repeats: int,
            ) -> tuple[dict[str, float], dict[str, float]]:
    """Medians of each call's time, and of its ratio to the same round's gradient."""
    times = _rounds(calls, x, repeats)
    ratios = {key: statistics.median(a / b for a, b in zip(v, times["gradient"], strict=True))
              for key, v in times.items()}
    return {key: statistics.median(v) for key, v in times.items()}, ratios


def bench_hf(repeats: int, batch: int, size: int) -> None:
    """Hugging Face ViT-B/16 (default ``ViTConfig``) as given: lumos CPLRP vs its gradient."""
    from transformers import ViTConfig, ViTForImageClassification

    import lumos
    from lumos.lrp import composites

    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(image_size=size, num_labels=1000)).eval()
    x = torch.randn(batch, 3, size, size)
    lrp = lumos.LRP(model, composite=composites.CPLRP())
    med, ratio = _paired({"gradient": lambda x, t: _gradient(model, x, t),
                          "lumos": lambda x, t: lrp.attribute(x, target=t)}, x, repeats)
    print(f"hf ViTForImageClassification (ViT-B/16) batch {batch} {size}x{size}, "
          f"{torch.get_num_threads()} threads, {repeats} rounds: gradient "
          f"{med['gradient']:.3f}s | lumos CPLRP {med['lumos']:.3f}s = {ratio['lumos']:.2f}x",
          flush=True)


def bench_prepare(name: str, repeats: int, batch: int, size: int) -> None:
    """lumos's preparation: a fresh ``LRP``'s first call less its second (median of rounds)."""
    import torchvision

    import lumos
    from lumos.lrp import composites

    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    composite = composites.CPLRP() if name.startswith("vit") else composites.EpsilonPlus()
    x = torch.randn(batch, 3, size, size)
    firsts, laters = [], []
    for _ in range(repeats):
        call = lumos.LRP(model, composite=composite).attribute
        firsts.append(_timed(lambda x, t, call=call: call(x, target=t), x))
        laters.append(_timed(lambda x, t, call=call: call(x, target=t), x))
    prep = statistics.median(a - b for a, b in zip(firsts, laters, strict=True))
    print(f"{name:9s} preparation ({type(composite).__name__}, batch {batch} {size}x{size}, "
          f"{repeats} rounds): first call {statistics.median(firsts):.3f}s, later call "
          f"{statistics.median(laters):.3f}s, preparation {prep:.3f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="*", default=["vgg16", "resnet18"])
    parser.add_argument("--gated", nargs="*", default=["efficientnet_b0", "resnet50"],
                        help="CNNs timed with EpsilonPlus against the gradient only")
    parser.add_argument("--hf", action="store_true",
                        help="also Hugging Face ViT-B/16 (default config), CPLRP")
    parser.add_argument("--prepare", nargs="*", default=[],
                        help="torchvision models whose preparation time to print")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models:
        bench(name, args.repeats, args.batch, args.size)
    for name in args.gated:
        bench_gated(name, args.repeats, args.batch, args.size)
    if args.hf:
        bench_hf(args.repeats, args.batch, args.size)
    for name in args.prepare:
        bench_prepare(name, args.repeats, args.batch, args.size)


if __name__ == "__main__":
    main()
