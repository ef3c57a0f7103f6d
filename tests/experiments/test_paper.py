"""The study's training limit: a seeded random subset that keeps every class of the split."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from lumos.experiments import paper

N, CLASSES = 200, 10


class ClassSorted(Dataset):
    """Stored sorted by class, as an image folder is: 20 zeros, then 20 ones, ..."""

    def __len__(self) -> int:
        return N

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.full((1, 2, 2), float(index)), index * CLASSES // N


def _labels(split: Any) -> list[int]:
    if isinstance(split, tuple):
        return [int(v) for v in split[1]]
    return [int(split[i][1]) for i in range(len(split))]


def test_limit_of_a_class_sorted_dataset_holds_every_class() -> None:
    for seed in range(5):
        part = paper._limit(ClassSorted(), 60, seed)
        assert len(part) == 60
        assert set(_labels(part)) == set(range(CLASSES)), seed
    assert paper._limit(ClassSorted(), 60, 0).indices == paper._limit(ClassSorted(), 60, 0).indices
    assert paper._limit(ClassSorted(), 60, 0).indices != paper._limit(ClassSorted(), 60, 1).indices


def test_limit_of_tensors_takes_the_same_samples_as_of_a_dataset() -> None:
    x = torch.arange(N, dtype=torch.float32).view(N, 1, 1, 1)
    y = torch.arange(N) * CLASSES // N                                 # sorted by class
    lx, ly = paper._limit((x, y), 60, 3)
    subset = paper._limit(ClassSorted(), 60, 3)
    assert lx.flatten().long().tolist() == subset.indices
    assert ly.tolist() == _labels(subset) and set(ly.tolist()) == set(range(CLASSES))


def test_limit_does_not_alias_with_a_class_interleaved_split() -> None:
    x = torch.arange(N, dtype=torch.float32).view(N, 1, 1, 1)
    y = torch.arange(N) % CLASSES                                      # 0, 1, ..., 9, 0, ...
    assert set(paper._limit((x, y), 60, 0)[1].tolist()) == set(range(CLASSES))


def test_no_limit_or_a_limit_past_the_end_keeps_the_whole_split() -> None:
    data = ClassSorted()
    assert paper._limit(data, 0, 0) is data and paper._limit(data, N, 0) is data
    pair = (torch.zeros(N, 1), torch.zeros(N))
    assert paper._limit(pair, 10 * N, 0) is pair
