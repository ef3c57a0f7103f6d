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
    part = _model()
    fit(part, data, val, epochs=2, batch_size=16, progress=False, checkpoint_dir=tmp_path)
    # pretend the run died after epoch 2 (only the last-epoch checkpoint survives the process)
    resumed = _model(seed=99)
    h_resumed = fit(resumed, data, val, epochs=3, batch_size=16, progress=False,
                    checkpoint_dir=tmp_path, resume=True, select_best=False)
    assert _same(_state(straight), _state(resumed))
    assert len(h_resumed.epochs) == 3
    assert h_resumed.epochs[2]["train_loss"] == h_straight.epochs[2]["train_loss"]


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
