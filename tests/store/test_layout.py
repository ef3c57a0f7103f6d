"""Store layout helpers, shard dealing and torchrun's environment."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lumos import distributed
from lumos.store import keyed, layout, shards


def test_names_and_ranges() -> None:
    assert layout.method_stem("lrp:epsilon-plus") == "lrp-epsilon-plus"
    assert layout.method_stem("ig") == "ig"
    name = layout.shard_name(1000, 1500)
    assert layout.parse_shard_name(name) == (1000, 1500)
    assert layout.parse_shard_name(f".{name}.123.part") is None
    assert shards.ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    pending = shards.ranges(50, 10)
    dealt = [shards.deal(pending, r, 3) for r in range(3)]
    assert sorted(r for part in dealt for r in part) == pending  # disjoint, complete, no padding
    assert shards.deal(pending, 2, 8) == [pending[2]] and shards.deal(pending, 7, 8) == []
    with pytest.raises(ValueError, match="shard size"):
        shards.ranges(5, 0)


def test_shard_round_trip_assembly_and_partials(tmp_path: Path) -> None:
    def group(a: int, b: int) -> dict[str, dict[str, np.ndarray]]:
        idx = np.arange(a, b, dtype=np.uint32)
        return {"input": {"index": idx, "data": np.ones((b - a, 1, 2, 2), np.float32) * a}}

    for a, b in ((0, 3), (3, 5)):
        layout.write_shard(shards.path(tmp_path, (a, b)), group(a, b),
                           {keyed.HASH_KEY: "h", "start": a, "stop": b})
    (tmp_path / "shards" / ".x.h5.99.part").write_bytes(b"half")
    assert set(shards.finished(tmp_path, "h")) == {(0, 3), (3, 5)}
    assert shards.finished(tmp_path, "other") == {}
    assert layout.remove_partials(tmp_path) == 1
    [out] = layout.Assembly(tmp_path, 5, {"input": {"settings_hash": "h"}}).finish(
        [(0, 3), (3, 5)], lambda r: shards.path(tmp_path, r))
    import h5py

    with h5py.File(out, "r") as f:
        assert list(f["index"][()]) == [0, 1, 2, 3, 4] and f["data"].chunks == (5, 1, 2, 2)
        assert f.attrs["settings_hash"] == "h"


def test_records_are_keyed_by_settings(tmp_path: Path) -> None:
    digest = keyed.settings_hash({"a": 1, "b": [1, 2]})
    assert digest == keyed.settings_hash({"b": [1, 2], "a": 1}) and len(digest) == 16
    keyed.write_record(tmp_path / "r.json", {keyed.HASH_KEY: digest})
    assert keyed.finished(tmp_path / "r.json", digest)
    assert not keyed.finished(tmp_path / "r.json", "0" * 16)
    (tmp_path / "bad.json").write_text("{half")
    assert keyed.read_record(tmp_path / "bad.json") is None


def test_world_from_torchrun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.env_world() == (0, 1, 0)
    world = distributed.setup("cpu")
    assert world.is_main and world.size == 1 and world.backend is None
    assert distributed.broadcast(world, "x") == "x"
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.env_world() == (3, 4, 1)
    assert distributed.pick_device("cpu", 1) == torch.device("cpu")
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        assert distributed.pick_device("cuda", 0).index == 0


def test_assembly_takes_shards_from_memory_and_files_and_aborts_cleanly(tmp_path: Path) -> None:
    import h5py

    def group(a: int, b: int) -> dict[str, dict[str, np.ndarray]]:
        idx = np.arange(a, b, dtype=np.uint32)
        return {"input": {"index": idx, "data": np.ones((b - a, 1, 2, 2), np.float32) * a},
                "m": {"index": idx, "attribution": np.full((b - a, 1, 2, 2), -a, np.float16)}}

    for a, b in ((0, 3), (3, 5), (5, 6)):
        layout.write_shard(shards.path(tmp_path, (a, b)), group(a, b), {"start": a, "stop": b})
    attrs = {"input": {"settings_hash": "h"}, "m": {"method": "lrp:x"}}
    assembly = layout.Assembly(tmp_path, 6, attrs)
    assembly.add((3, 5), group(3, 5))  # in memory, as the shard writer does
    assert sorted(p.name for p in tmp_path.glob(".*.part")) == [
        f".input.h5.{os.getpid()}.part", f".m.h5.{os.getpid()}.part"]
    written = assembly.finish([(0, 3), (3, 5), (5, 6)], lambda r: shards.path(tmp_path, r))
    assert [p.name for p in written] == ["input.h5", "m.h5"] and not list(tmp_path.glob(".*"))
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert list(f["index"][()]) == list(range(6)) and f.attrs["method"] == "lrp:x"
        assert f["attribution"].dtype == np.float16 and f["attribution"].chunks == (6, 1, 2, 2)
        assert [float(v) for v in f["attribution"][:, 0, 0, 0]] == [0, 0, 0, -3, -3, -5]
    half = layout.Assembly(tmp_path / "shards", 6, attrs)
    half.add((0, 3), group(0, 3))
    half.abort()  # after an error: nothing of it is left
    assert not list((tmp_path / "shards").glob(".*"))


def test_chunks_are_whole_rows_of_about_a_mebibyte() -> None:
    assert layout.row_chunks((1000, 3, 224, 224), 4) == (1, 3, 224, 224)  # 588 KiB rows: one each
    assert layout.row_chunks((1000, 1000), 4) == (262, 1000)
    assert layout.row_chunks((5, 1000), 4) == (5, 1000)
    assert layout.row_chunks((1000,), 8) is None and layout.row_chunks((0, 4), 4) is None
