"""Pixel flipping speed: lumos vs a plain batched torch loop vs Quantus 0.6, same curves.

256 mnist-5k test digits, 28 steps of 28 pixels, fill 0, softmax score of the true class, on
the study's MnistCNN (trained weights from lumos.models.zoo when available; the cost of a
forward does not depend on the weights). Two attributions: Gradient x Input of the model
(realistic: its zeros sit on the black background) and uniform noise (nothing for lumos to skip).
The three runs are interleaved; medians of ``--repeats`` runs are printed with ratios, and the
largest absolute difference between the curves. Quantus is GPL and never a lumos dependency:
``pip install quantus`` to include it.

    python bench/metrics_speed.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from lumos.data.samples import mnist5k
from lumos.metrics.perturbation import pixel_flipping
from lumos.models.cnn import MnistCNN

N, STEPS, PER_STEP = 256, 28, 28


def load_model() -> tuple[nn.Module, str]:
    """The trained mnist-5k CNN if the zoo has it, else an untrained one (same cost)."""
    try:
        from lumos.models import zoo

        return zoo.mnist5k_cnn().eval(), "trained mnist5k_cnn"
    except (ImportError, AttributeError):
        torch.manual_seed(0)
        return MnistCNN().eval(), "untrained MnistCNN (lumos.models.zoo.mnist5k_cnn missing)"


def input_x_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Gradient x Input with plain autograd."""
    x = x.clone().requires_grad_(True)
    model(x).gather(1, y[:, None]).sum().backward()
    assert x.grad is not None
    return (x.grad * x).detach()


def plain_loop(model: nn.Module, x: Tensor, a: Tensor, y: Tensor) -> Tensor:
    """The straightforward batched loop: argsort once, scatter the fill, one forward per step."""
    order = torch.sort(a.reshape(N, -1), dim=1, descending=True, stable=True).indices
    xp = x.clone().reshape(N, -1)
    scores = []
    with torch.no_grad():
        for k in range(STEPS):
            xp.scatter_(1, order[:, k * PER_STEP:(k + 1) * PER_STEP], 0.0)
            prob = model(xp.reshape(x.shape)).softmax(1)
            scores.append(prob.gather(1, y[:, None])[:, 0])
    return torch.stack(scores, 1)


def lumos_curves(model: nn.Module, x: Tensor, a: Tensor, y: Tensor) -> Tensor:
    return pixel_flipping(model, x, a, y, steps=STEPS, fill=0.0, score="softmax")[:, 1:]


def quantus_runner() -> Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor] | None:
    try:
        import quantus
    except ImportError:
        return None

    def run(model: nn.Module, x: Tensor, a: Tensor, y: Tensor) -> Tensor:
        metric = quantus.PixelFlipping(features_in_step=PER_STEP, perturb_baseline=0.0,
                                       normalise=False, abs=False, disable_warnings=True,
                                       display_progressbar=False)
        curves = metric(model=model, x_batch=x.cpu().numpy(), y_batch=y.cpu().numpy(),
                        a_batch=a.cpu().numpy(), device=str(x.device), softmax=True,
                        batch_size=N)
        return torch.tensor(curves, dtype=torch.float32)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, name = load_model()
    model.to(args.device)
    x, y = mnist5k("test")
    x, y = x[:N].to(args.device), y[:N].to(args.device)
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)).to(x.device)
    attributions = {"gradient x input": input_x_gradient(model, x, y), "uniform noise": noise}
    runners: dict[str, Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]] = {
        "lumos": lumos_curves, "plain loop": plain_loop}
    quantus = quantus_runner()
    if quantus is None:
        print("Quantus is not installed: `pip install quantus` to time it side by side "
              "(GPL, so never a lumos dependency).")
    else:
        runners["quantus 0.6"] = quantus
    print(f"model: {name}; {N} digits x {STEPS} steps of {PER_STEP} pixels, fill 0, softmax; "
          f"device {args.device}; torch threads: {torch.get_num_threads()}")
    for label, a in attributions.items():
        times: dict[str, list[float]] = {k: [] for k in runners}
        curves: dict[str, Tensor] = {}
        for _ in range(args.repeats):
            for key, fn in runners.items():
                sync()
                start = time.perf_counter()
                curves[key] = fn(model, x, a, y).cpu()
                sync()
                times[key].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"\nattribution: {label}")
        for key in runners:
            diff = (curves[key] - curves["lumos"]).abs().max().item()
            print(f"  {key:12s} median {med[key]:.3f} s   x{med[key] / med['lumos']:.2f} of lumos"
                  f"   max |curve - lumos| = {diff:.2e}")


if __name__ == "__main__":
    main()
