"""Embedded data: mnist-5k's fixed class-balanced split, scikit-image photos."""

from __future__ import annotations

import pytest
import torch

from lumos.data import mnist5k, photos, samples


def test_mnist5k_split_is_fixed_balanced_and_disjoint() -> None:
    x_all, y_all = mnist5k("all")
    x_tr, y_tr = mnist5k("train")
    x_te, y_te = mnist5k("test")
    assert x_tr.shape == (4000, 1, 28, 28) and x_te.shape == (1000, 1, 28, 28)
    assert torch.bincount(y_te).tolist() == [100] * 10
    assert torch.bincount(y_tr).tolist() == [400] * 10
    assert y_te[:10].tolist() == list(range(10))  # class-interleaved: prefixes are balanced
    # the test digits are the last 100 of each class in file order
    for c in range(10):
        last = x_all[y_all == c][-100:]
        assert torch.equal(x_te[y_te == c], last)
    flat_te = {tuple(v) for v in x_te.flatten(1)[:, 200:260].tolist()}
    flat_tr = {tuple(v) for v in x_tr.flatten(1)[:, 200:260].tolist()}
    assert len(flat_te & flat_tr) <= 2  # disjoint up to identical-looking crops
    assert float(x_tr.min()) >= 0 and float(x_tr.max()) <= 1 and x_tr.dtype == torch.float32
    with pytest.raises(ValueError, match="split"):
        mnist5k("val")  # type: ignore[arg-type]


def test_photos_are_rgb() -> None:
    pics = photos(["chelsea", "astronaut"])
    assert {p.mode for p in pics.values()} == {"RGB"} and pics["chelsea"].size == (451, 300)
    with pytest.raises(ValueError, match="no sample photo"):
        photos(["nonexistent"])
    with pytest.raises(ValueError, match="not a colour photo"):
        photos(["camera"])


def test_mnist5k_parses_once_and_hands_out_copies() -> None:
    first, _ = samples.mnist5k("all")
    first.zero_()
    again, labels = samples.mnist5k("all")
    assert float(again.sum()) > 0 and len(labels) == 5000
    assert samples._file_digits.cache_info().hits >= 1
