"""``explain-dataset`` throughput against a bare loop and the Zennit + h5py reference workflow.

A synthetic ImageFolder (random 256x256 RGB PNGs, two classes) under torchvision ResNet-18
(random weights saved to a local safetensors file, eval mode), LRP EpsilonPlus, 224x224 inputs.
Three ways, interleaved round by round (the order reversed every other round) so machine load
hits all alike:

- ``explain-dataset``: :func:`lumos.explain_dataset` end to end: PNG decoding in a loader
  worker, explanation, HDF5 shards written on a background thread, final files assembled; the
  rate is the manifest's (samples over the run's wall time after model and folder are loaded).
- ``bare loop``: the same attributor (``lumos.LRP(model, EpsilonPlus())``, prepared inside the
  timing as explain-dataset does) on the same batches of already decoded tensors in memory; no
  data loading, no writing. Like explain-dataset, it takes the predicted class from LRP's own
  forward pass (a callable target), so it runs the model once per batch.
  explain-dataset also prints how much of its wall time went to the model's forward pass and the
  attributor (what the bare loop does): a ratio from one run, robust to machine load.
- ``zennit + h5py``: the reference workflow of one process: a DataLoader over the folder, Zennit's
  EpsilonPlus with its ResNet canonizer and ``Gradient`` attributor (its output relevance a
  callable of the output, so also one forward pass), every batch written as a slice of
  preallocated h5py datasets (attribution, prediction, label).

    .venv/bin/python bench/explain_dataset.py [--n 48] [--batch 8] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_folder(root: Path, n: int, size: int = 256) -> Path:
    rng = np.random.default_rng(0)
    for k in range(n):
        cls = root / f"class{k % 2}"
        cls.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            cls / f"{k:05d}.png")
    return root


def run_store(folder: Path, weights: Path, out: Path, batch: int) -> float:
    import shutil

    import lumos

    shutil.rmtree(out, ignore_errors=True)  # a fresh store each round (a finished one is reused)
    store = lumos.explain_dataset("resnet18", f"folder:{folder}", ["lrp:epsilon-plus"], out,
                                  weights=weights, batch_size=batch, shard_size=4 * batch,
                                  progress=False)
    m = store.manifest
    busy = m["predict_seconds"] + m["methods"]["lrp:epsilon-plus"]["seconds"]
    print(f"  explain-dataset: model forward + LRP {busy:.1f} s of the run's "
          f"{m['last_run_seconds']:.1f} s ({busy / m['last_run_seconds']:.0%}; the rest is "
          "loading, writing and assembling)", flush=True)
    return float(m["images_per_second"])


def run_bare(model: torch.nn.Module, x: torch.Tensor, batch: int) -> float:
    import lumos
    from lumos.lrp import composites

    begin = time.perf_counter()
    lrp = lumos.LRP(model, composite=composites.EpsilonPlus())
    for a in range(0, len(x), batch):
        lrp.attribute(x[a:a + batch], target=_predicted)  # one forward pass picks the class
    return len(x) / (time.perf_counter() - begin)


def _predicted(out: torch.Tensor) -> torch.Tensor:
    return out.gather(1, out.argmax(1, keepdim=True))[:, 0]


def run_zennit(model: torch.nn.Module, folder: Path, out: Path, batch: int) -> float:
    import h5py
    from torch.utils.data import DataLoader
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlus
    from zennit.torchvision import ResNetCanonizer

    from lumos.data.folder import ImageFolder
    from lumos.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    begin = time.perf_counter()
    data = ImageFolder(folder, 224, 3, IMAGENET_MEAN, IMAGENET_STD)
    loader = DataLoader(data, batch_size=batch, num_workers=1)
    n = len(data)
    with h5py.File(out, "w") as f:
        attr = f.create_dataset("attribution", (n, 3, 224, 224), dtype="float32")
        pred = f.create_dataset("prediction", (n, 1000), dtype="float32")
        label = f.create_dataset("label", (n,), dtype="uint32")
        composite = EpsilonPlus(canonizers=[ResNetCanonizer()])
        at = 0
        with Gradient(model=model, composite=composite) as attributor:
            for x, y, _ in loader:
                seen = []

                def start(out: torch.Tensor, seen: list[torch.Tensor] = seen) -> torch.Tensor:
                    seen.append(out.detach())  # the prediction, from the same forward pass
                    return torch.eye(1000)[out.argmax(1)] * out

                _, relevance = attributor(x, start)
                attr[at:at + len(x)] = relevance.numpy()
                pred[at:at + len(x)] = seen[0].numpy()
                label[at:at + len(x)] = y.numpy()
                at += len(x)
    return n / (time.perf_counter() - begin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="images in the folder")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import torchvision

    from lumos.data.folder import ImageFolder
    from lumos.data.transforms import IMAGENET_MEAN, IMAGENET_STD
    from lumos.models.checkpoint import write_tensors

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = make_folder(root / "images", args.n)
        torch.manual_seed(0)
        model = torchvision.models.resnet18(weights=None).eval()
        weights = write_tensors(root / "resnet18.safetensors", model.state_dict())
        data = ImageFolder(folder, 224, 3, IMAGENET_MEAN, IMAGENET_STD)
        x = torch.stack([data[i][0] for i in range(len(data))])
        rates: dict[str, list[float]] = {"explain-dataset": [], "bare loop": [],
                                         "zennit + h5py": []}
        runs = {"explain-dataset": lambda: run_store(folder, weights, root / "store",
                                                     args.batch),
                "bare loop": lambda: run_bare(model, x, args.batch),
                "zennit + h5py": lambda: run_zennit(model, folder, root / "zennit.h5",
                                                    args.batch)}
        run_bare(model, x[:args.batch], args.batch)  # warm-up: oneDNN builds its kernels once
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))  # no side always first
            for key in order:
                rates[key].append(runs[key]())
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}/s" for k, v in rates.items()),
                  flush=True)
    print(f"ResNet-18 224x224, LRP EpsilonPlus, {args.n} images, batch {args.batch}, "
          f"{args.threads} threads; median images/s over {args.rounds} rounds:")
    for key, values in rates.items():
        ratio = [v / b for v, b in zip(values, rates["bare loop"], strict=True)]
        print(f"  {key:16s} {statistics.median(values):6.2f} images/s  "
              f"{statistics.median(ratio):.2f}x the bare loop (per-round ratios "
              f"{', '.join(f'{q:.2f}' for q in ratio)})")


if __name__ == "__main__":
    main()
