"""Training loop for the study's classifiers: seeded, deterministic on CPU, resumable.

Every epoch draws its shuffling and dropout randomness from ``(seed, epoch)`` alone and the
learning rate is a pure function of the global step, so a run resumed from its last epoch
checkpoint continues bit-for-bit as if it had never stopped (on the same machine and thread
count). With a validation split the weights of the best epoch (highest validation accuracy,
earliest on ties) are restored at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from lumos.models.tensorio import read_meta, read_tensors, write_tensors
from lumos.progress import Progress

Data = Union[tuple[Tensor, Tensor], Dataset]  # noqa: UP007 (a runtime alias on Python 3.10)
Augment = Callable[[Tensor, torch.Generator], Tensor]

LAST = "last.safetensors"
BEST = "best.safetensors"


@dataclass
class History:
    """What :func:`fit` did: one dict of metrics per epoch and the selected epoch."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    seconds: float = 0.0

    @property
    def best(self) -> dict[str, float]:
        """Metrics of the selected epoch (the last one without a validation split)."""
        if not self.epochs:
            return {}
        return self.epochs[(self.best_epoch or len(self.epochs)) - 1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for checkpoint sidecars."""
        return {**asdict(self), "best": self.best}


def lr_at(step: int, total: int, lr: float, schedule: str = "onecycle") -> float:
    """Learning rate at ``step`` of ``total``: constant, or one-cycle (warm-up 20%, cosine down).

    A pure function of the step, which is what makes resuming exact.
    """
    if schedule == "constant":
        return lr
    if schedule != "onecycle":
        raise ValueError(f"schedule must be 'onecycle' or 'constant', got {schedule!r}")
    warm = max(1, int(0.2 * total))
    if step < warm:
        return lr * (0.04 + 0.96 * step / warm)
    frac = (step - warm) / max(1, total - warm)
    return lr * (1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def fit(model: nn.Module, train: Data, val: Data | None = None, *, epochs: int = 10,
        batch_size: int = 64, lr: float = 3e-3, weight_decay: float = 0.0,
        schedule: str = "onecycle", seed: int = 0, augment: Augment | None = None,
        progress: bool = True, checkpoint_dir: str | Path | None = None, resume: bool = False,
        select_best: bool = True, device: str | torch.device = "cpu",
        num_workers: int = 0) -> History:
    """Train ``model`` with Adam(W) and cross-entropy; returns the per-epoch :class:`History`.

    Parameters
    ----------
    train, val:
        ``(images, labels)`` tensors, or a dataset yielding ``(image, label)`` pairs.
    augment:
        ``augment(batch, generator) -> batch``, applied to training batches only.
    checkpoint_dir:
        Folder for ``last.safetensors`` (weights + optimiser state, every epoch) and
        ``best.safetensors``; needed for ``resume``.
    resume:
        Continue from ``checkpoint_dir/last.safetensors`` if present (else start fresh). With
        the same settings the result is bit-identical to an uninterrupted run; ``epochs`` may
        grow (the schedule then stretches for the remaining epochs); a different ``seed``,
        ``batch_size``, ``lr``, ``weight_decay`` or ``schedule`` is refused.
    select_best:
        With ``val``, end with the weights of the epoch with the best validation accuracy.

    The model is left in eval mode. The global torch RNG is not disturbed.
    """
    _check_args(epochs, batch_size, lr, resume, checkpoint_dir)
    model.to(device)
    n_train = len(train[0]) if isinstance(train, tuple) else len(train)  # type: ignore[arg-type]
    steps_per_epoch = math.ceil(n_train / batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    history, best_state = History(), None
    settings = {"seed": seed, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                "schedule": schedule}
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume and ckpt is not None and (ckpt / LAST).is_file():
        history, best_state = _restore(ckpt, model, opt, settings)
    start = time.perf_counter() - history.seconds
    bar = Progress(epochs * steps_per_epoch, "train", enabled=progress,
                   initial=len(history.epochs) * steps_per_epoch)
    with bar, torch.random.fork_rng(devices=[]):
        for epoch in range(len(history.epochs) + 1, epochs + 1):
            gen = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
            torch.manual_seed(_epoch_seed(seed, epoch))
            model.train()
            loss_sum, correct = 0.0, 0
            for i, (x, y) in enumerate(_batches(train, batch_size, gen, num_workers)):
                step = (epoch - 1) * steps_per_epoch + i
                x, y = x.to(device), y.to(device)
                if augment is not None:
                    x = augment(x, gen)
                for group in opt.param_groups:
                    group["lr"] = lr_at(step, epochs * steps_per_epoch, lr, schedule)
                out = model(x)
                loss = nn.functional.cross_entropy(out, y)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training diverged: loss is {loss.item()} at epoch "
                                             f"{epoch}, step {i}; try a smaller lr than {lr}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.item() * len(y)
                correct += int((out.argmax(1) == y).sum())
                bar.update(1, f"epoch {epoch}/{epochs} loss {loss.item():.4f}")
            stats = {"epoch": epoch, "train_loss": loss_sum / n_train,
                     "train_accuracy": correct / n_train}
            if val is not None:
                scores = evaluate(model, val, device=device)
                stats.update({f"val_{k}": v for k, v in scores.items()})
            history.epochs.append(stats)
            if val is not None and _improved(history):
                history.best_epoch = epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            history.seconds = time.perf_counter() - start
            stats["seconds"] = history.seconds
            if ckpt is not None:
                _save_state(ckpt, model, opt, history, settings, best_state is not None
                            and history.best_epoch == epoch)
            bar.write(_summary(stats))
    if val is None:
        history.best_epoch = len(history.epochs)
    elif select_best and best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, *, batch_size: int = 500,
             device: str | torch.device = "cpu") -> dict[str, float]:
    """Mean cross-entropy ``loss`` and ``accuracy`` of ``model`` on ``data`` (in eval mode).

    The model's ``training`` flag is restored afterwards.
    """
    was_training = model.training
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    try:
        for x, y in _batches(data, batch_size, None, 0):
            out = model(x.to(device))
            y = y.to(device)
            loss_sum += float(nn.functional.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            total += len(y)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    return {"loss": loss_sum / total, "accuracy": correct / total}


def random_shift(max_shift: int = 2) -> Augment:
    """Augmentation: translate each image by up to ``max_shift`` pixels (zero fill).

    Cheap and label-preserving for digits and clothes; drawn from the epoch's generator so it
    stays deterministic.
    """
    def shift(x: Tensor, gen: torch.Generator) -> Tensor:
        n, pad = x.shape[0], max_shift
        padded = nn.functional.pad(x, (pad, pad, pad, pad))
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        h, w = x.shape[-2:]
        rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]
        idx_n = torch.arange(n)[:, None, None, None]
        idx_c = torch.arange(x.shape[1])[None, :, None, None]
        return padded[idx_n, idx_c, rows, cols]
    return shift


def random_flip() -> Augment:
    """Augmentation: mirror each image left-right with probability 1/2 (for natural photos)."""
    def flip(x: Tensor, gen: torch.Generator) -> Tensor:
        mask = torch.rand(x.shape[0], generator=gen) < 0.5
        out = x.clone()
        out[mask] = x[mask].flip(-1)
        return out
    return flip


def _batches(data: Data, batch_size: int, gen: torch.Generator | None,
             num_workers: int) -> Iterator[tuple[Tensor, Tensor]]:
    if isinstance(data, tuple):
        x, y = data
        order = torch.randperm(len(x), generator=gen) if gen is not None else None
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size] if order is not None else slice(i, i + batch_size)
            yield x[idx], y[idx]
        return
    sampler = torch.randperm(len(data), generator=gen).tolist() if gen is not None else None  # type: ignore[arg-type]
    loader = DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=num_workers)
    for x, y in loader:
        yield x, torch.as_tensor(y)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % (2**63)


def _improved(history: History) -> bool:
    current = history.epochs[-1]["val_accuracy"]
    if history.best_epoch is None:
        return True
    return current > history.epochs[history.best_epoch - 1]["val_accuracy"]


def _summary(stats: dict[str, float]) -> str:
    text = f"epoch {int(stats['epoch'])} loss {stats['train_loss']:.4f}"
    if "val_accuracy" in stats:
        text += f" val_acc {stats['val_accuracy']:.4f}"
    return text


def _check_args(epochs: int, batch_size: int, lr: float, resume: bool,
                checkpoint_dir: str | Path | None) -> None:
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir (where last.safetensors lives)")


def _save_state(ckpt: Path, model: nn.Module, opt: torch.optim.Optimizer, history: History,
                settings: dict[str, Any], is_best: bool) -> None:
    """Write ``last.safetensors``: model weights, optimiser tensors, and the history as JSON."""
    state = opt.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for idx, slots in state["state"].items():
        for name, value in slots.items():
            tensors[f"optim.{idx}.{name}"] = torch.as_tensor(value)
    meta = {"history": history.to_dict(), "param_groups": state["param_groups"],
            "settings": settings}
    if is_best:
        write_tensors(ckpt / BEST, model.state_dict(), {"epoch": history.best_epoch})
    write_tensors(ckpt / LAST, tensors, meta)


def _restore(ckpt: Path, model: nn.Module, opt: torch.optim.Optimizer, settings: dict[str, Any],
             ) -> tuple[History, dict[str, Tensor] | None]:
    tensors, meta = read_tensors(ckpt / LAST), read_meta(ckpt / LAST)
    saved_settings = meta.get("settings", {})
    changed = sorted(k for k in settings
                     if k in saved_settings and saved_settings[k] != settings[k])
    if changed:
        raise ValueError(f"cannot resume from {ckpt / LAST}: it was trained with different "
                         + ", ".join(f"{k} ({saved_settings[k]} != {settings[k]})"
                                     for k in changed))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    slots: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            slots.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
    saved = meta["history"]
    history = History([dict(e) for e in saved["epochs"]], saved["best_epoch"], saved["seconds"])
    best = read_tensors(ckpt / BEST) if (ckpt / BEST).is_file() else None
    return history, best
