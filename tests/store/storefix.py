"""Small files for the store tests: an ImageFolder of digits-like PNGs and a tiny checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

SRC = str(Path(__file__).resolve().parents[2] / "src")


def make_folder(root: Path, classes: tuple[str, ...] = ("a", "b", "c"), per_class: int = 10,
                size: int = 28, mode: str = "L", seed: int = 0) -> Path:
    """``root/<class>/<k>.png`` random images, one brighter blob per class."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            pixels = rng.integers(0, 80, size=(size, size, 3), dtype=np.uint8)
            pixels[label * 4:label * 4 + 8, 4:12] = 250
            image = Image.fromarray(pixels)
            (image.convert("L") if mode == "L" else image).save(root / name / f"{k:03d}.png")
    return root


def make_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised MnistCNN saved as a lumos checkpoint (1-channel 28x28 inputs)."""
    from lumos.models.checkpoint import save_checkpoint
    from lumos.models.cnn import MnistCNN

    torch.manual_seed(seed)
    return save_checkpoint(folder / "model.safetensors", MnistCNN().eval(),
                           architecture={"name": "mnist-cnn", "kwargs": {}}, dataset="folder",
                           classes=[str(d) for d in range(10)],
                           normalization={"mean": [0.0], "std": [1.0]})


def lumos_cmd(*args: str, prefix: str = "", env: dict[str, str] | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``lumos ARGS`` in a fresh interpreter (after ``prefix`` code), one CPU thread."""
    code = f"{prefix}\nimport sys\nfrom lumos.cli import main\nsys.exit(main(sys.argv[1:]))"
    full_env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, check=False)


def store_arrays(folder: Path) -> dict[str, np.ndarray]:
    """Every dataset of every h5 file of a finished store, as ``{file/dataset: array}``."""
    import h5py

    from lumos.store.layout import datasets

    out = {}
    for path in sorted(folder.glob("*.h5")):
        with h5py.File(path, "r") as f:
            out.update({f"{path.name}/{k}": v for k, v in datasets(f).items()})
    return out
