"""Heatmaps: zero is neutral, sign picks the colour, clipping is symmetric, files are atomic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lumos.explanation import Explanation
from lumos.viz import colormaps
from lumos.viz.image import (
    data_uri,
    grid,
    heatmap,
    overlay,
    resize,
    save_png,
    scale,
    to_image,
    to_map,
)


def test_diverging_maps_are_centred_and_signed() -> None:
    for name in ("bwr", "coldnhot"):
        table = colormaps.lut(name).astype(int)
        red_hi = table[-1]
        blue_lo = table[0]
        assert red_hi[0] > red_hi[2], name        # positive end is red
        assert blue_lo[2] > blue_lo[0], name      # negative end is blue
        centre = colormaps.apply(np.array([0.5]), name)[0].astype(int)
        assert abs(centre[0] - centre[2]) < 10, name  # neutral at zero
    assert colormaps.apply(np.array([np.nan]), "bwr")[0].tolist() == [255, 255, 255]
    with pytest.raises(ValueError, match="unknown colormap 'nope'"):
        colormaps.lut("nope")


def test_scale_is_symmetric_and_clips_at_percentile() -> None:
    v = np.linspace(-1.0, 1.0, 201)
    v[-1] = 1000.0                              # one outlier must not wash out the rest
    s = scale(v, percentile=99.0)
    assert s.max() == 1.0 and s.min() >= -1.0
    assert s[100] == 0.0
    assert np.array_equal(scale(-v, percentile=99.0), -s)   # symmetric in the sign
    assert abs(s[50]) > 0.45                    # -0.5 stays visible after the clip
    assert np.array_equal(scale(np.zeros((3, 3))), np.zeros((3, 3)))
    assert scale(np.array([-2.0, 1.0]), "positive").tolist() == [0.0, 1.0]
    assert scale(np.array([-2.0, 1.0]), "absolute", 100).tolist() == [1.0, 0.5]
    with pytest.raises(ValueError, match="mode must be"):
        scale(v, "bad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="percentile"):
        scale(v, percentile=0)


def test_heatmap_accepts_tensor_array_and_explanation() -> None:
    attr = torch.zeros(2, 3, 4, 5, dtype=torch.float64)
    attr[0, :, 0, 0] = 1.0                      # channels summed: +3 at (0, 0)
    attr[0, 0, 1, 1] = -3.0
    exp = Explanation(attribution=attr, output=torch.ones(2), method="ig")
    for source in (attr, attr.numpy(), exp):
        img = heatmap(source)
        assert img.size == (5, 4) and img.mode == "RGB"
        px = np.asarray(img).astype(int)
        assert px[0, 0, 0] > px[0, 0, 2]        # positive: red
        assert px[1, 1, 2] > px[1, 1, 0]        # negative: blue
        assert px[3, 4].tolist() == [255, 255, 255]  # zero: white
    assert to_map(attr, index=1).shape == (4, 5)
    assert heatmap(attr[0], size=40).size == (40, 40)
    with pytest.raises(ValueError, match="shaped"):
        heatmap(torch.zeros(5))
    with pytest.raises(IndexError, match="out of range"):
        to_map(attr, index=5)


def test_overlay_shows_input_where_nothing_is_relevant() -> None:
    x = torch.full((1, 8, 8), 0.5)
    attr = torch.zeros(1, 8, 8)
    attr[0, 0, 0] = 1.0
    picture = to_image(x)
    out = np.asarray(overlay(picture, attr, alpha=1.0)).astype(int)
    assert out[5, 5].tolist() == [128, 128, 128]
    assert out[0, 0, 0] > out[0, 0, 2]
    with pytest.raises(ValueError, match="alpha"):
        overlay(picture, attr, alpha=2.0)


def test_to_image_undoes_normalisation() -> None:
    x = torch.zeros(3, 2, 2)
    img = to_image(x, mean=[0.5, 0.5, 0.5], std=[0.2, 0.2, 0.2])
    assert np.asarray(img)[0, 0].tolist() == [128, 128, 128]
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_image(torch.zeros(2, 4, 4))


def test_grid_layout_labels_and_errors() -> None:
    a = Image.new("RGB", (10, 10), "red")
    sheet = grid([[a, None], [a, a]], row_labels=["one", "two"], col_labels=["x", "y"], cell=20)
    assert sheet.width > 2 * 20 and sheet.height > 2 * 20
    with pytest.raises(ValueError, match="row labels"):
        grid([[a]], row_labels=["a", "b"])
    with pytest.raises(ValueError, match="at least one"):
        grid([])


def test_png_is_written_atomically(tmp_path) -> None:
    img = resize(Image.new("RGB", (2, 2), "blue"), 6)
    path = save_png(img, tmp_path / "sub" / "h.png")
    assert Image.open(path).size == (6, 6)
    assert [p.name for p in path.parent.iterdir()] == ["h.png"]
    assert data_uri(img).startswith("data:image/png;base64,")


def test_png_gets_the_usual_file_mode(tmp_path) -> None:
    import os

    path = save_png(Image.new("RGB", (1, 1)), tmp_path / "m.png")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
