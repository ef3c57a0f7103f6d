"""Heatmaps, overlays and labelled grids with numpy and Pillow only.

Every function takes lumos's attributions as they come: a torch tensor, a numpy array, or an
:class:`~lumos.explanation.Explanation`. Colour channels are summed, because relevance is a
property of a pixel position: a pixel is relevant when its channels together moved the score.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lumos.atomic import write_bytes_atomic
from lumos.viz import colormaps

Mode = Literal["signed", "absolute", "positive"]
_MODES = ("signed", "absolute", "positive")


def to_map(attribution: Any, index: int = 0) -> np.ndarray:
    """One attribution as a 2-D float64 array ``(H, W)``, channels summed.

    Parameters
    ----------
    attribution:
        Tensor, ndarray or Explanation, shaped ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)``.
    index:
        Which sample to take from a batch ``(N, C, H, W)``.
    """
    array = _as_numpy(attribution)
    if array.ndim == 4:
        if not -array.shape[0] <= index < array.shape[0]:
            raise IndexError(f"sample index {index} is out of range for a batch of "
                             f"{array.shape[0]}")
        array = array[index]
    if array.ndim == 3:
        array = array.sum(axis=0)
    if array.ndim != 2:
        raise ValueError("an attribution to draw must be shaped (H, W), (C, H, W) or "
                         f"(N, C, H, W); got shape {tuple(array.shape)}")
    return array


def _as_numpy(value: Any) -> np.ndarray:
    """A float64 numpy copy of a tensor, array or Explanation (its ``attribution``)."""
    value = getattr(value, "attribution", value)
    if hasattr(value, "detach"):
        value = value.detach().to("cpu").double().numpy()
    return np.array(value, dtype=np.float64)


def scale(values: np.ndarray, mode: Mode = "signed", percentile: float = 99.5) -> np.ndarray:
    """Scale a relevance map for drawing: ``[-1, 1]`` for ``signed``, ``[0, 1]`` otherwise.

    The bound is the ``percentile`` of the absolute values (clipped symmetrically), so a few
    extreme pixels do not wash out the rest and zero stays at the centre of a diverging map.
    ``absolute`` draws magnitudes, ``positive`` keeps only evidence for the class. Non-finite
    values are drawn as zero. An all-zero map stays zero.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}; got {mode!r}")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if mode == "absolute":
        v = np.abs(v)
    elif mode == "positive":
        v = np.clip(v, 0.0, None)
    bound = float(np.percentile(np.abs(v), percentile)) if v.size else 0.0
    if bound <= 0.0:
        bound = float(np.abs(v).max()) if v.size else 0.0
    if bound <= 0.0:
        return np.zeros_like(v)
    return np.clip(v / bound, -1.0, 1.0)


def heatmap(attribution: Any, *, mode: Mode = "signed", cmap: str | None = None,
            percentile: float = 99.5, size: int | tuple[int, int] | None = None,
            index: int = 0) -> Image.Image:
    """Draw one attribution as an RGB heatmap image.

    Parameters
    ----------
    attribution:
        Tensor, ndarray or Explanation (see :func:`to_map`).
    mode:
        ``signed`` (diverging, zero at the centre), ``absolute`` or ``positive``.
    cmap:
        Colormap name (:func:`lumos.viz.colormaps.names`); default ``bwr`` for ``signed`` and
        ``reds`` otherwise.
    percentile:
        Symmetric clipping bound, as a percentile of the absolute values.
    size:
        Output size in pixels (an int for square); small maps are enlarged without smoothing,
        so every input pixel stays visible as a block.
    index:
        Sample to draw from a batch.
    """
    name = cmap or ("bwr" if mode == "signed" else "reds")
    scaled = scale(to_map(attribution, index), mode, percentile)
    unit = (scaled + 1.0) / 2.0 if mode == "signed" else scaled
    image = Image.fromarray(colormaps.apply(unit, name), mode="RGB")
    return resize(image, size) if size is not None else image


def to_image(x: Any, *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
             size: int | tuple[int, int] | None = None, index: int = 0) -> Image.Image:
    """Turn a model input ``(C, H, W)`` or ``(N, C, H, W)`` back into an RGB picture.

    ``mean``/``std`` undo a normalisation; the result is clipped to ``[0, 1]``. One channel is
    drawn as gray.
    """
    array = _as_numpy(x)
    if array.ndim == 4:
        array = array[index]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[0] not in (1, 3):
        raise ValueError(f"an input to draw must be shaped (C, H, W) with 1 or 3 channels; "
                         f"got shape {tuple(array.shape)}")
    if std is not None:
        array = array * np.asarray(std, dtype=np.float64).reshape(-1, 1, 1)
    if mean is not None:
        array = array + np.asarray(mean, dtype=np.float64).reshape(-1, 1, 1)
    pixels = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    if pixels.shape[0] == 1:
        pixels = np.repeat(pixels, 3, axis=0)
    image = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)), mode="RGB")
    return resize(image, size) if size is not None else image


def overlay(image: Image.Image, attribution: Any, *, alpha: float = 0.7, mode: Mode = "signed",
            cmap: str | None = None, percentile: float = 99.5, index: int = 0) -> Image.Image:
    """Blend a heatmap over the (grayed) input picture.

    Each pixel is mixed with weight ``alpha * |scaled relevance|``: where nothing is relevant the
    input shows through, where relevance is strong the heatmap colour dominates.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    heat = heatmap(attribution, mode=mode, cmap=cmap, percentile=percentile, index=index)
    base = image.convert("L").convert("RGB").resize(heat.size, Image.Resampling.BILINEAR)
    weight = alpha * np.abs(scale(to_map(attribution, index), mode, percentile))[..., None]
    mixed = (1.0 - weight) * np.asarray(base, dtype=np.float64) + weight * np.asarray(heat)
    return Image.fromarray(np.round(mixed).astype(np.uint8), mode="RGB")


def resize(image: Image.Image, size: int | tuple[int, int]) -> Image.Image:
    """Resize to ``size``; nearest-neighbour when enlarging (crisp blocks), area when shrinking."""
    target = (size, size) if isinstance(size, int) else tuple(size)
    if target == image.size:
        return image
    enlarging = target[0] >= image.size[0] and target[1] >= image.size[1]
    method = Image.Resampling.NEAREST if enlarging else Image.Resampling.BOX
    return image.resize((int(target[0]), int(target[1])), method)


def grid(cells: Sequence[Sequence[Image.Image | None]], *, row_labels: Sequence[str] = (),
         col_labels: Sequence[str] = (), cell: int = 112, pad: int = 4) -> Image.Image:
    """Lay images out as a labelled grid: rows are samples, columns are methods.

    ``None`` leaves a cell blank (a method that did not run for that sample). Labels are drawn
    with Pillow's built-in font, so no font file is needed.
    """
    n_rows = len(cells)
    n_cols = max((len(r) for r in cells), default=0)
    if n_rows == 0 or n_cols == 0:
        raise ValueError("grid needs at least one row and one column of images")
    for what, labels, count in (("row", row_labels, n_rows), ("column", col_labels, n_cols)):
        if labels and len(labels) != count:
            raise ValueError(f"got {len(labels)} {what} labels for {count} {what}s")
    font = ImageFont.load_default()
    left = max((_text_width(font, s) + 2 * pad for s in row_labels), default=0)
    top = 16 + pad if col_labels else 0
    width = left + n_cols * (cell + pad) + pad
    sheet = Image.new("RGB", (width, top + n_rows * (cell + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(col_labels):
        draw.text((left + pad + j * (cell + pad), pad), label, fill="black", font=font)
    for i, row in enumerate(cells):
        y = top + pad + i * (cell + pad)
        if row_labels:
            draw.text((pad, y + cell // 2 - 6), row_labels[i], fill="black", font=font)
        for j, img in enumerate(row):
            if img is not None:
                sheet.paste(resize(img.convert("RGB"), cell), (left + pad + j * (cell + pad), y))
    return sheet


def _text_width(font: Any, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def png_bytes(image: Image.Image) -> bytes:
    """The image encoded as PNG."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def data_uri(image: Image.Image | bytes) -> str:
    """A ``data:image/png;base64,...`` URI, so HTML can embed the image with no file beside it."""
    raw = image if isinstance(image, bytes) else png_bytes(image)
    return "data:image/png;base64," + base64.b64encode(raw).decode("ascii")


def save_png(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write ``image`` as PNG atomically (temp file in the same folder, then rename)."""
    return write_bytes_atomic(png_bytes(image), path)
