"""MNIST / Fashion-MNIST loaders on hand-made IDX files: correct reads, one clear error each."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from datafix import digits, idx_bytes, write_mnist

from lumos.data import MNIST, DatasetError, DatasetNotFoundError, FashionMNIST
from lumos.data.mnist import read_idx


@pytest.mark.parametrize("gz", [True, False])
def test_reads_the_four_files(tmp_path: Path, gz: bool) -> None:
    write_mnist(tmp_path / "mnist", gz=gz)
    train, test = MNIST(tmp_path), MNIST(tmp_path, train=False)
    images, labels = digits(20, seed=0)
    assert len(train) == 20 and len(test) == 10
    assert torch.equal(train.data, torch.from_numpy(images))
    assert torch.equal(train.targets, torch.from_numpy(labels.astype(np.int64)))
    x, y = train[3]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y == 3
    assert torch.allclose(x[0], torch.from_numpy(images[3]).float() / 255)
    xs, ys = test.tensors()
    assert xs.shape == (10, 1, 28, 28) and float(xs.max()) <= 1.0 and ys.dtype == torch.int64


def test_transform_is_applied(mnist_root: Path) -> None:
    ds = MNIST(mnist_root, transform=lambda t: t * 2)
    assert float(ds[0][0].max()) > 1.0


def test_fashion_mnist_uses_its_folder_and_names(tmp_path: Path) -> None:
    write_mnist(tmp_path / "fashion-mnist")
    ds = FashionMNIST(tmp_path, train=False)
    assert len(ds) == 10 and ds.classes[9] == "Ankle boot"
    with pytest.raises(DatasetNotFoundError, match="mnist"):
        MNIST(tmp_path)


def test_missing_file_names_path_and_url(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        MNIST(tmp_path)
    message = str(err.value)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte") in message
    assert "https://" in message and "download=True" in message


def _corrupt(folder: Path, name: str, data: bytes) -> None:
    (folder / f"{name}.gz").unlink()
    (folder / name).write_bytes(data)


@pytest.mark.parametrize(("name", "data", "message"), [
    ("train-images-idx3-ubyte", idx_bytes(digits(20)[0], magic=0x0801), "expected IDX magic"),
    ("train-images-idx3-ubyte", b"\x1f\x8b\x08\x00garbage", "corrupt gzip"),
    ("train-images-idx3-ubyte", b"PK\x03\x04" + bytes(100), "bad magic"),
    ("train-images-idx3-ubyte", idx_bytes(digits(20)[0])[:-5], "truncated"),
    ("train-images-idx3-ubyte", idx_bytes(digits(20)[0], count=21), "truncated"),
    ("train-images-idx3-ubyte", idx_bytes(digits(20)[0], count=19), "longer than"),
    ("train-labels-idx1-ubyte", idx_bytes(digits(19)[1]), "20 images but 19 labels"),
    ("train-labels-idx1-ubyte", idx_bytes(np.full(20, 10, np.uint8)), "out of range"),
    ("train-images-idx3-ubyte", idx_bytes(np.zeros((20, 28, 27), np.uint8)), "28x28"),
    ("train-images-idx3-ubyte", b"\x00\x00\x08\x03\x00", "truncated header"),
])
def test_corrupt_files_raise_one_clear_error(mnist_root: Path, name: str, data: bytes,
                                             message: str) -> None:
    _corrupt(mnist_root / "mnist", name, data)
    before = sorted(p.name for p in (mnist_root / "mnist").iterdir())
    with pytest.raises(DatasetError, match=message) as err:
        MNIST(mnist_root)
    assert str(mnist_root / "mnist") in str(err.value)
    assert sorted(p.name for p in (mnist_root / "mnist").iterdir()) == before


def test_read_idx_detects_gzip_by_content(tmp_path: Path) -> None:
    images = digits(3)[0]
    path = tmp_path / "images-without-suffix"
    path.write_bytes(gzip.compress(idx_bytes(images)))
    assert np.array_equal(read_idx(path, 3), images)
