"""lumos.train: determinism, exact resume, best-epoch selection, clear errors; the train CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lumos.models.cnn import MnistCNN, MnistMLP
from lumos.train import History, evaluate, fit, lr_at, random_shift


def _toy(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable 28x28 data: the class decides which image row is bright."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.3
    for i in range(n):
        x[i, 0, 4 + 5 * int(y[i])] += 0.7
    return x, y


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return MnistCNN(n_classes=4, channels=(4, 8), hidden=16)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fit_learns_and_is_deterministic() -> None:
    data = _toy()
    runs = []
    for _ in range(2):
        model = _model()
        history = fit(model, data, data, epochs=3, batch_size=16, lr=1e-2, progress=False,
                      augment=random_shift(1))
        runs.append((_state(model), history))
    assert _same(runs[0][0], runs[1][0])
    assert [e["train_loss"] for e in runs[0][1].epochs] == \
        [e["train_loss"] for e in runs[1][1].epochs]
    assert runs[0][1].best["val_accuracy"] > 0.9


def test_fit_leaves_global_rng_and_ends_in_eval_mode() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model = _model()
    torch.manual_seed(123)
    fit(model, _toy(32), None, epochs=1, batch_size=8, progress=False)
    assert torch.equal(torch.rand(3), expected)
    assert not model.training


def test_resume_continues_bit_exactly(tmp_path: Path) -> None:
    data, val = _toy(64), _toy(32, seed=1)
    straight = _model()
    h_straight = fit(straight, data, val, epochs=3, batch_size=16, progress=False,
                     select_best=False)
    calls = 0

    def crash_in_epoch_3(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == 9:  # 4 batches per epoch: the first batch of epoch 3
            raise KeyboardInterrupt
        return x

    with pytest.raises(KeyboardInterrupt):
        fit(_model(), data, val, epochs=3, batch_size=16, progress=False, select_best=False,
            checkpoint_dir=tmp_path, augment=crash_in_epoch_3)
    resumed = _model(seed=99)  # a new process: fresh weights, only the checkpoint survives
    h_resumed = fit(resumed, data, val, epochs=3, batch_size=16, progress=False,
                    checkpoint_dir=tmp_path, resume=True, select_best=False)
    assert _same(_state(straight), _state(resumed))
    assert len(h_resumed.epochs) == 3
    assert h_resumed.epochs[2]["train_loss"] == h_straight.epochs[2]["train_loss"]
    with pytest.raises(ValueError, match=r"different lr \(0\.003 != 0\.01\)"):
        fit(_model(), data, val, epochs=4, batch_size=16, lr=1e-2, progress=False,
            checkpoint_dir=tmp_path, resume=True)


def test_best_epoch_weights_are_restored(tmp_path: Path) -> None:
    data, val = _toy(64), _toy(32, seed=1)
    model = _model()
    history = fit(model, data, val, epochs=4, batch_size=16, lr=5e-2, progress=False,
                  checkpoint_dir=tmp_path)
    best = history.best_epoch
    assert best is not None
    assert history.epochs[best - 1]["val_accuracy"] == max(e["val_accuracy"]
                                                           for e in history.epochs)
    assert evaluate(model, val)["accuracy"] == pytest.approx(history.best["val_accuracy"])
    meta = json.loads((tmp_path / "last.json").read_text())
    assert meta["history"]["best_epoch"] == best


def test_fit_accepts_a_dataset() -> None:
    x, y = _toy(48)
    model = MnistMLP(n_classes=4, hidden=(16,))
    history = fit(model, TensorDataset(x, y), TensorDataset(x, y), epochs=2, batch_size=16,
                  progress=False)
    assert isinstance(history, History) and len(history.epochs) == 2


def test_evaluate_restores_training_flag() -> None:
    model = _model().train()
    evaluate(model, _toy(16))
    assert model.training


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"), ({"lr": 0.0}, "lr"),
    ({"resume": True}, "checkpoint_dir"), ({"schedule": "cosine"}, "schedule"),
])
def test_fit_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit(_model(), _toy(8), None, progress=False, **kwargs)


def test_divergence_is_reported() -> None:
    x, y = _toy(8)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="diverged"):
        fit(_model(), (x, y), None, epochs=1, batch_size=8, progress=False)


def test_one_cycle_schedule_shape() -> None:
    rates = [lr_at(s, 100, 1.0) for s in range(100)]
    assert rates[0] < 0.1 and max(rates) == pytest.approx(1.0, abs=0.05)
    assert rates[-1] < 0.01 and rates.index(max(rates)) == 20
    assert lr_at(50, 100, 0.3, "constant") == 0.3


def test_random_shift_keeps_shape_and_moves_content() -> None:
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, 4, 4] = 1.0
    out = random_shift(2)(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), torch.ones(2))


# --- the `lumos train` command, on hand-made IDX files -------------------------------------

def _write_learnable_mnist(folder: Path, n_train: int = 160, n_test: int = 40) -> None:
    """IDX files whose class is a bright row: the recipe must learn it almost perfectly."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from datafix import idx_bytes

    folder.mkdir(parents=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = _toy(n, seed)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(
            idx_bytes((x[:, 0].clamp(0, 1) * 255).round().numpy()))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(y.numpy()))


def _lumos(*argv: str) -> int:
    from lumos.cli import main

    return main(list(argv))


def test_cli_trains_saves_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from lumos.models.checkpoint import load_checkpoint

    _write_learnable_mnist(tmp_path / "data" / "fashion-mnist")
    out = tmp_path / "run"
    common = ("train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "data"),
              "--out", str(out), "--quiet", "--batch-size", "32")
    assert _lumos(*common, "--epochs", "2") == 0
    assert capsys.readouterr().out.strip() == str(out / "model.safetensors")
    model, meta = load_checkpoint(out / "model.safetensors")
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert meta["dataset"] == "fashion-mnist" and meta["classes"][0] == "T-shirt/top"
    assert meta["architecture"]["name"] == "mnist-cnn" and len(meta["metrics"]["history"]) == 2
    assert meta["metrics"]["best_epoch"] in (1, 2)
    assert "val_accuracy" in meta["metrics"]["history"][0]
    assert _lumos(*common, "--epochs", "4", "--resume") == 0
    meta = load_checkpoint(out / "model.safetensors")[1]
    assert [e["epoch"] for e in meta["metrics"]["history"]] == [1, 2, 3, 4]
    assert meta["metrics"]["test_accuracy"] >= 0.9  # the recipe learns the fixture


@pytest.mark.parametrize(("argv", "message"), [
    (("--dataset", "mnist"), "mnist-file-missing"),
    (("--dataset", "imagenette", "--model", "cnn"), "is for 28x28 grayscale images"),
    (("--dataset", "mnist-5k", "--model", "resnet18"), "RGB ImageNet-style"),
    (("--dataset", "mnist-5k", "--val-fraction", "1.5"), "--val-fraction"),
    (("--dataset", "imagewoof", "--weights", "nope.pt"), "--weights file not found"),
])
def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                 argv: tuple[str, ...], message: str) -> None:
    rc = _lumos("train", *argv, "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path))
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    if message == "mnist-file-missing":
        assert str(tmp_path / "mnist" / "train-images-idx3-ubyte") in err and "https://" in err
    else:
        assert message in err


@pytest.mark.slow
def test_cli_trains_resnet18_on_imagenette_layout(tmp_path: Path) -> None:
    pytest.importorskip("torchvision")
    import sys

    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from datafix import imagenette_tarball

    from lumos.data.download import extract_tar
    from lumos.models.checkpoint import load_checkpoint

    extract_tar(imagenette_tarball(tmp_path / "a.tgz", per_class=2), tmp_path / "data")
    out = tmp_path / "run"
    assert _lumos("train", "--dataset", "imagenette", "--data-dir", str(tmp_path / "data"),
                  "--out", str(out), "--epochs", "1", "--image-size", "32", "--quiet",
                  "--val-fraction", "0.25") == 0
    model, meta = load_checkpoint(out / "model.safetensors")
    assert meta["classes"][0] == "tench" and meta["normalization"]["mean"][0] == 0.485
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)
