"""Image transforms written with torch alone, so torchvision stays optional at run time.

Each transform is a small callable; :class:`Compose` chains them. They accept a PIL image or a
float tensor ``(C, H, W)`` (or a batch ``(N, C, H, W)``) with values in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_tensor(image: Any) -> Tensor:
    """A PIL image (any mode; converted to RGB unless grayscale) → float ``(C, H, W)`` in [0, 1].

    Tensors pass through unchanged (as float).
    """
    if isinstance(image, Tensor):
        return image.float()
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0


class ToTensor:
    """Transform form of :func:`to_tensor`."""

    def __call__(self, image: Any) -> Tensor:
        return to_tensor(image)

    def __repr__(self) -> str:
        return "ToTensor()"


class Resize:
    """Resize so the shorter side is ``size`` (an int), or to exactly ``(h, w)``.

    Bilinear with antialiasing, as for ImageNet evaluation.
    """

    def __init__(self, size: int | tuple[int, int]) -> None:
        if isinstance(size, int) and size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size

    def __call__(self, image: Any) -> Tensor:
        x = to_tensor(image)
        h, w = x.shape[-2:]
        if isinstance(self.size, int):  # the longer side truncates, as in torchvision
            short, long = (h, w) if h <= w else (w, h)
            other = max(1, int(self.size * long / short))
            out = (self.size, other) if h <= w else (other, self.size)
        else:
            out = (int(self.size[0]), int(self.size[1]))
        if out == (h, w):
            return x
        batch = x if x.dim() == 4 else x.unsqueeze(0)
        resized = torch.nn.functional.interpolate(batch, size=out, mode="bilinear",
                                                  align_corners=False, antialias=True)
        return resized.clamp(0.0, 1.0) if x.dim() == 4 else resized[0].clamp(0.0, 1.0)

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class CenterCrop:
    """Cut the central ``size x size`` (or ``(h, w)``) window; zero-pads smaller images."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def __call__(self, image: Any) -> Tensor:
        x = to_tensor(image)
        th, tw = self.size
        h, w = x.shape[-2:]
        if h < th or w < tw:
            ph, pw = max(0, th - h), max(0, tw - w)
            x = torch.nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            h, w = x.shape[-2:]
        top, left = round((h - th) / 2), round((w - tw) / 2)  # torchvision's offsets
        return x[..., top:top + th, left:left + tw]

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class Normalize:
    """``(x - mean) / std`` per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ValueError(f"mean and std need the same length, got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {list(std)}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)

    def __call__(self, image: Any) -> Tensor:
        x = to_tensor(image)
        channels = x.shape[-3]
        if channels != len(self.mean):
            raise ValueError(f"Normalize has {len(self.mean)} channels, image has {channels}")
        mean = torch.tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={list(self.mean)}, std={list(self.std)})"


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any) -> Any:
        for t in self.transforms:
            image = t(image)
        return image

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


def eval_transform(size: int = 224, resize: int | None = None,
                   mean: Sequence[float] | None = IMAGENET_MEAN,
                   std: Sequence[float] | None = IMAGENET_STD) -> Compose:
    """The usual evaluation pipeline: resize the shorter side, center-crop, normalise.

    ``resize`` defaults to ``size * 8 / 7`` (256 for 224). ``mean=None`` skips normalising
    (e.g. when explanations should live in ``[0, 1]`` pixel space).
    """
    steps: list[Callable[[Any], Any]] = [Resize(resize or round(size * 8 / 7)), CenterCrop(size)]
    if mean is not None and std is not None:
        steps.append(Normalize(mean, std))
    return Compose(steps)
