"""Torch-only transforms against torchvision's, and the dataset catalog's validation split."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from lumos.data.catalog import hold_out
from lumos.data.transforms import (
    CenterCrop,
    Compose,
    Normalize,
    Resize,
    ToTensor,
    eval_transform,
    to_tensor,
)


def _photo(w: int = 37, h: int = 23, mode: str = "RGB") -> Image.Image:
    g = torch.Generator().manual_seed(0)
    array = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
    return Image.fromarray(array, "RGB").convert(mode)


def test_to_tensor_matches_torchvision() -> None:
    tvf = pytest.importorskip("torchvision.transforms.functional")
    for mode in ("RGB", "L"):
        image = _photo(mode=mode)
        assert torch.equal(to_tensor(image), tvf.to_tensor(image))
    assert to_tensor(_photo(mode="RGBA")).shape == (3, 23, 37)


@pytest.mark.parametrize("size", [16, (20, 30), 23])
def test_resize_matches_torchvision_on_tensors(size: int | tuple[int, int]) -> None:
    tvf = pytest.importorskip("torchvision.transforms.functional")
    x = to_tensor(_photo())
    ours = Resize(size)(x)
    ref = tvf.resize(x, list(size) if isinstance(size, tuple) else size, antialias=True)
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref.clamp(0, 1), atol=1e-6)


def test_center_crop_and_normalize_match_torchvision() -> None:
    tvf = pytest.importorskip("torchvision.transforms.functional")
    x = to_tensor(_photo())
    assert torch.equal(CenterCrop(15)(x), tvf.center_crop(x, [15, 15]))
    assert torch.equal(CenterCrop((20, 10))(x), tvf.center_crop(x, [20, 10]))
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.6, 0.7]
    assert torch.allclose(Normalize(mean, std)(x), tvf.normalize(x, mean, std))


def test_center_crop_pads_small_images() -> None:
    out = CenterCrop(8)(torch.ones(1, 4, 6))
    assert out.shape == (1, 8, 8) and float(out.sum()) == 24.0


def test_eval_transform_pipeline_on_a_jpeg() -> None:
    buf = io.BytesIO()
    _photo(300, 200).save(buf, format="JPEG")
    image = Image.open(io.BytesIO(buf.getvalue()))
    x = eval_transform(224)(image)
    assert x.shape == (3, 224, 224)
    raw = eval_transform(224, mean=None)(image)
    assert float(raw.min()) >= 0.0 and float(raw.max()) <= 1.0
    assert "Resize(256)" in repr(eval_transform(224))
    assert Compose([ToTensor(), Resize(10)])(image).shape == (3, 10, 15)


@pytest.mark.parametrize(("args", "message"), [
    ((Normalize, [0.5], [0.5, 0.5]), "same length"), ((Normalize, [0.5], [0.0]), "positive"),
    ((Resize, 0), "size must be"),
])
def test_bad_transform_arguments(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        args[0](*args[1:])
    with pytest.raises(ValueError, match="channels"):
        Normalize([0.5], [0.5])(torch.rand(3, 4, 4))


def test_hold_out_is_strided_and_disjoint() -> None:
    x, y = torch.arange(20).float().view(20, 1), torch.arange(20) % 2
    (tx, _), (vx, vy) = hold_out((x, y), 0.25)
    assert vx.flatten().tolist() == [3, 7, 11, 15, 19] and len(tx) == 15
    assert set(vy.tolist()) == {1}  # stride 4 over alternating labels
    data = torch.utils.data.TensorDataset(x, y)
    rest, val = hold_out(data, 0.1)
    assert len(rest) == 18 and len(val) == 2
    assert hold_out((x, y), 0.0)[1] is None
    with pytest.raises(ValueError, match="fraction"):
        hold_out((x, y), 1.0)
