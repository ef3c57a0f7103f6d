"""Checkpoints: bit-exact round trip, sidecar contents, pickles refused, atomic writes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from lumos.atomic import atomic_file
from lumos.models import CheckpointError, MnistCNN, MnistMLP, load_checkpoint, save_checkpoint
from lumos.models.checkpoint import read_tensors, write_tensors


def _trained_looking_cnn() -> MnistCNN:
    model = MnistCNN(channels=(4, 8), hidden=16)
    with torch.no_grad():  # non-trivial BatchNorm buffers, like after training
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.num_batches_tracked.fill_(17)
    return model.eval()


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    model = _trained_looking_cnn()
    arch = {"name": "mnist-cnn", "kwargs": {"channels": [4, 8], "hidden": 16}}
    path = save_checkpoint(tmp_path / "model.safetensors", model, architecture=arch,
                           dataset="mnist", classes=[str(i) for i in range(10)],
                           normalization={"mean": [0.0], "std": [1.0]},
                           metrics={"test_accuracy": 0.99})
    loaded, meta = load_checkpoint(path)  # rebuilt from the sidecar alone
    assert isinstance(loaded, MnistCNN) and not loaded.training
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(model(x), loaded(x))
    assert meta["dataset"] == "mnist" and meta["metrics"] == {"test_accuracy": 0.99}
    assert meta["normalization"] == {"mean": [0.0], "std": [1.0]} and meta["lumos_version"]
    assert json.loads((tmp_path / "model.json").read_text())["architecture"] == arch


def test_load_into_given_model_and_mismatch(tmp_path: Path) -> None:
    model = MnistMLP(hidden=(8,))
    path = save_checkpoint(tmp_path / "m.safetensors", model,
                           architecture={"name": "mnist-mlp", "kwargs": {"hidden": [8]}})
    loaded, _ = load_checkpoint(path, MnistMLP(hidden=(8,)))
    assert torch.equal(loaded.net[1].weight, model.net[1].weight)
    with pytest.raises(CheckpointError, match="does not fit the model"):
        load_checkpoint(path, MnistMLP(hidden=(9,)))


def test_weights_only_pt_file_loads(tmp_path: Path) -> None:
    model = MnistMLP(hidden=(8,))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    state = read_tensors(tmp_path / "w.pt")
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors"])
def test_pickle_payload_is_refused_and_never_runs(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / f"evil{suffix}"
    if suffix == ".safetensors":
        path.write_bytes(pickle.dumps({"w": _Payload(marker)}, protocol=4))
        match = "not a valid safetensors file.*pickle"
    else:
        torch.save({"w": _Payload(marker)}, path)
        match = "refusing to load"
    with pytest.raises(CheckpointError, match=match):
        read_tensors(path)
    assert not marker.exists()


def test_missing_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        read_tensors(tmp_path / "nope.safetensors")
    (tmp_path / "g.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        read_tensors(tmp_path / "g.safetensors")
    write_tensors(tmp_path / "n.safetensors", {"w": torch.ones(1)})
    with pytest.raises(CheckpointError, match="architecture"):
        load_checkpoint(tmp_path / "n.safetensors")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="dict of tensors"):
        read_tensors(tmp_path / "list.pt")


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as handle:
        handle.write(b"new but incomplete")
        raise RuntimeError("crash midway")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
