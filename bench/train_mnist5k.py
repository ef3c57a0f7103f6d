"""Train the study's CNN on mnist-5k: held-out accuracy and seconds on 2 CPU threads.

Runs lumos's recipe (``lumos.models.zoo.MNIST5K_RECIPE`` through ``lumos.train.fit``) and, as
the peer, the same model and schedule in a plain hand-written PyTorch loop (``torch.optim.AdamW``
+ ``OneCycleLR``, no augmentation), interleaved, and prints the medians and the time ratio. The
target: accuracy >= 0.97 on the fixed 1,000-digit test split in <= 60 s on 2 cores.

    .venv/bin/python bench/train_mnist5k.py [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from lumos.data import mnist5k
from lumos.models.cnn import MnistCNN
from lumos.models.zoo import MNIST5K_RECIPE
from lumos.train import evaluate, fit, random_shift


def lumos_run(seed: int) -> tuple[float, float]:
    r = MNIST5K_RECIPE
    torch.manual_seed(seed)
    model = MnistCNN(**r["architecture"]["kwargs"])
    start = time.perf_counter()
    fit(model, mnist5k("train"), None, epochs=r["epochs"], batch_size=r["batch_size"],
        lr=r["lr"], weight_decay=r["weight_decay"], seed=seed, augment=random_shift(r["shift"]),
        progress=False)
    seconds = time.perf_counter() - start
    return evaluate(model, mnist5k("test"))["accuracy"], seconds


def plain_run(seed: int) -> tuple[float, float]:
    """The textbook loop: shuffle, AdamW, one-cycle schedule, cross-entropy."""
    r = MNIST5K_RECIPE
    torch.manual_seed(seed)
    model = MnistCNN(**r["architecture"]["kwargs"])
    x, y = mnist5k("train")
    start = time.perf_counter()
    opt = torch.optim.AdamW(model.parameters(), lr=r["lr"], weight_decay=r["weight_decay"])
    steps = r["epochs"] * -(-len(x) // r["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["lr"], total_steps=steps)
    model.train()
    for _ in range(r["epochs"]):
        order = torch.randperm(len(x))
        for i in range(0, len(x), r["batch_size"]):
            idx = order[i:i + r["batch_size"]]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - start
    return evaluate(model.eval(), mnist5k("test"))["accuracy"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mnist5k("all")  # load the digits once before timing
    runs: dict[str, list[tuple[float, float]]] = {"lumos": [], "plain torch": []}
    for rep in range(args.repeats):
        for name, runner in (("lumos", lumos_run), ("plain torch", plain_run)):
            acc, sec = runner(rep)
            runs[name].append((acc, sec))
            print(f"run {rep}  {name:12s} accuracy {acc:.4f}  {sec:6.1f} s", flush=True)
    print(f"\nmnist-5k, {MNIST5K_RECIPE['epochs']} epochs, {args.threads} threads, "
          f"medians over {args.repeats} run(s):")
    med = {k: (statistics.median(a for a, _ in v), statistics.median(s for _, s in v))
           for k, v in runs.items()}
    for name, (acc, sec) in med.items():
        print(f"  {name:12s} accuracy {acc:.4f}  seconds {sec:6.1f}")
    print(f"  time ratio lumos / plain torch: {med['lumos'][1] / med['plain torch'][1]:.2f}")
    acc, sec = med["lumos"]
    verdict = "PASS" if acc >= 0.97 and sec <= 60 else "FAIL"
    print(f"  target accuracy >= 0.97 in <= 60 s: {verdict} ({acc:.4f}, {sec:.1f} s)")


if __name__ == "__main__":
    main()
