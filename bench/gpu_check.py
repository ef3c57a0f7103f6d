"""GPU check: IG, LRP, metrics and training run on CUDA and agree with the CPU.

Run on a machine with a CUDA device: ``python bench/gpu_check.py``. Prints one line per check
(max difference to the CPU result, or a time ratio) and exits non-zero if a check fails.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch
import torchvision
from torch import nn

import lumos
from lumos.data import mnist5k
from lumos.lrp import composites
from lumos.metrics.perturbation import pixel_flipping

FAILURES: list[str] = []


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    if not ok:
        FAILURES.append(name)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def median_time(fn: Callable[[], object], repeats: int = 5) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ig_checks(cuda: torch.device) -> None:
    model = torchvision.models.resnet18(weights=None, num_classes=10).double().eval()
    x = torch.rand(3, 3, 64, 64, dtype=torch.float64)
    target = [1, 4, 7]
    cpu = lumos.IntegratedGradients(model).attribute(x, target=target, n_steps=16)
    gpu_model = torchvision.models.resnet18(weights=None, num_classes=10).double().eval()
    gpu_model.load_state_dict(model.state_dict())
    gpu_model.to(cuda)
    ig = lumos.IntegratedGradients(gpu_model)
    gpu = ig.attribute(x.to(cuda), target=target, n_steps=16)
    check("IG float64 CUDA == CPU", gpu.device.type == "cuda" and rel_err(gpu, cpu) < 1e-9,
          f"rel err {rel_err(gpu, cpu):.2e}")
    exp = ig.explain(x.to(cuda), target=target, tolerance=0.01, internal_batch_size="auto")
    ratio = (exp.delta.abs() / (exp.output - exp.baseline_output).abs()).max().item()
    check("IG adaptive on CUDA (auto chunks)", bool(exp.converged.all()) and ratio <= 0.01
          and bool((exp.error <= 0.01).all()),
          f"n_steps {exp.n_steps.tolist()}, max |delta|/|f(x)-f(x')| {ratio:.4f}, "
          f"estimated map error {exp.error.max().item():.4f}")
    ref = lumos.IntegratedGradients(model).explain(x, target=target, tolerance=0.01)
    check("IG adaptive CUDA == CPU (steps, map, error estimate)",
          torch.equal(ref.n_steps, exp.n_steps) and rel_err(exp.attribution, ref.attribution) < 1e-9
          and rel_err(exp.error, ref.error) < 1e-6, f"n_steps {ref.n_steps.tolist()}")

    model32 = torchvision.models.resnet18(weights=None).eval().to(cuda)
    xb = torch.rand(16, 3, 224, 224, device=cuda)
    ig32 = lumos.IntegratedGradients(model32)
    n_steps = 32

    def plain() -> None:
        xg = xb.clone().requires_grad_(True)
        model32(xg)[:, 0].sum().backward()

    t_grad = median_time(plain)
    t_ig = median_time(lambda: ig32.attribute(xb, target=0, n_steps=n_steps,
                                              internal_batch_size=64))
    print(f"      IG ResNet-18 b16 224 fp32, {n_steps} steps: {t_ig * 1e3:.1f} ms; ratio to "
          f"n_steps x gradient: {t_ig / (n_steps * t_grad):.3f}")


def lrp_checks(cuda: torch.device) -> None:
    for name in ("vgg16", "resnet18"):
        model = getattr(torchvision.models, name)(weights=None).double().eval()
        x = torch.rand(2, 3, 64, 64, dtype=torch.float64)
        comp = composites.EpsilonGammaBox(low=0.0, high=1.0)
        cpu = lumos.LRP(model, composite=comp).attribute(x, target=[3, 5])
        gpu = lumos.LRP(model.to(cuda), composite=comp).attribute(x.to(cuda), target=[3, 5])
        check(f"LRP EpsilonGammaBox {name} float64 CUDA == CPU",
              gpu.device.type == "cuda" and rel_err(gpu, cpu) < 1e-9,
              f"rel err {rel_err(gpu, cpu):.2e}")
    for name in ("vgg16", "resnet18"):
        model = getattr(torchvision.models, name)(weights=None).eval().to(cuda)
        xb = torch.rand(16, 3, 224, 224, device=cuda)
        lrp = lumos.LRP(model, composite=composites.EpsilonGammaBox(low=0.0, high=1.0))

        def plain(model: nn.Module = model, xb: torch.Tensor = xb) -> None:
            xg = xb.clone().requires_grad_(True)
            model(xg)[:, 0].sum().backward()

        t_grad = median_time(plain)
        t_lrp = median_time(lambda lrp=lrp, xb=xb: lrp.attribute(xb, target=0))
        print(f"      LRP EpsilonGammaBox {name} b16 224 fp32: {t_lrp * 1e3:.1f} ms, "
              f"ratio to one gradient {t_lrp / t_grad:.2f}")


def metric_and_training_checks(cuda: torch.device) -> None:
    x, y = mnist5k("test")
    x, y = x[:128], y[:128]
    model = lumos.models.MnistCNN().eval()
    attr = torch.randn_like(x)
    cpu = pixel_flipping(model, x, attr, y, steps=28, score="softmax")
    gpu = pixel_flipping(model.to(cuda), x.to(cuda), attr.to(cuda), y, steps=28, score="softmax")
    err = rel_err(gpu, cpu)
    check("pixel flipping CUDA == CPU", err < 1e-4, f"rel err {err:.2e}")
    from lumos.train import evaluate, fit

    xt, yt = mnist5k("train")
    torch.manual_seed(0)
    net = lumos.models.MnistCNN()
    start = time.perf_counter()
    fit(net, (xt, yt), epochs=3, progress=False, device=cuda)
    seconds = time.perf_counter() - start
    xs, ys = mnist5k("test")
    stats = evaluate(net.cpu(), (xs, ys))
    check("training on CUDA", next(net.parameters()).device.type == "cpu",
          f"3 epochs in {seconds:.1f} s, held-out {stats}")


def store_checks(cuda: torch.device) -> None:
    """explain-dataset on the GPU: images/s for ResNet-50 (LRP ε+) and EfficientNet-Lite0 (IG),
    on a synthetic 224x224 ImageFolder; the stored LRP maps equal the CPU's."""
    import tempfile
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from lumos.models.checkpoint import write_tensors

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(0)
        for k in range(512):
            (root / "images" / f"c{k % 4}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(
                root / "images" / f"c{k % 4}" / f"{k:04d}.png")
        net = torchvision.models.resnet50(weights=None).eval()
        weights = write_tensors(root / "r50.safetensors", net.state_dict())
        runs = {"resnet50 lrp:epsilon-plus": ("resnet50", weights, "lrp:epsilon-plus", 64),
                "efficientnet-lite0 ig": ("efficientnet-lite0", None, "ig", 32)}
        for name, (spec, w, method, batch) in runs.items():
            store = lumos.explain_dataset(spec, f"folder:{root / 'images'}", [method],
                                          root / name.replace(" ", "-").replace(":", "-"),
                                          weights=w, device=cuda, batch_size=batch,
                                          shard_size=256, progress=False)
            rate = store.manifest["images_per_second"]
            check(f"explain-dataset {name} on CUDA", store.manifest["complete"],
                  f"{len(store)} images at 224x224, {rate} images/s (batch {batch})")
        with lumos.open_store(root / "resnet50-lrp-epsilon-plus") as store:
            x = torch.from_numpy(store.arrays(None, ("data",))["data"][:8])
            stored = store.arrays("lrp:epsilon-plus", ("attribution", "target"))
        lrp = lumos.LRP(net, composite=composites.EpsilonPlus())
        cpu = lrp.attribute(x, target=torch.from_numpy(stored["target"][:8]))
        err = rel_err(torch.from_numpy(stored["attribution"][:8]), cpu)
        check("stored CUDA LRP maps == CPU LRP.attribute", err < 1e-3, f"rel err {err:.2e}")


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    cuda = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(cuda)}, torch {torch.__version__}")
    for part in (ig_checks, lrp_checks, metric_and_training_checks, store_checks):
        try:
            part(cuda)
        except Exception as err:  # report and go on: one GPU lease, every check counts
            check(part.__name__, False, f"{type(err).__name__}: {err}")
    print(f"{len(FAILURES)} failed" if FAILURES else "all GPU checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
