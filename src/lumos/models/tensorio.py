"""Tensor files without pickles: safetensors (or weights-only ``.pt``) plus a JSON sidecar.

The bottom of :mod:`lumos.models`: :mod:`~lumos.models.architectures`,
:mod:`~lumos.models.checkpoint` and :mod:`lumos.train` build on it, and it imports none of them.
Every file is written to a temp file in the same folder and renamed, so a crash never leaves a
half-written file; ``.pt``/``.pth`` files are read with ``torch.load(weights_only=True)`` and
anything needing real unpickling is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lumos.atomic import atomic_file

_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (first 16 hex digits)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or would need unsafe unpickling."""


def sidecar_path(weights: str | os.PathLike[str]) -> Path:
    """The JSON sidecar next to a weights file: ``model.safetensors`` → ``model.json``."""
    return Path(weights).with_suffix(".json")


def write_tensors(path: str | os.PathLike[str], tensors: Mapping[str, Tensor],
                  meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``tensors`` as safetensors at ``path`` and ``meta`` as its JSON sidecar, atomically.

    Tensors are made contiguous CPU copies; shared storage (tied weights) is duplicated, which
    safetensors requires. The sidecar is written first, the weights last, so a weights file on
    disk always has its sidecar.
    """
    from safetensors.torch import save

    path = Path(path)
    payload = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    blob = save(payload)
    if meta is not None:
        with atomic_file(sidecar_path(path), "w") as handle:
            json.dump(_jsonable(meta), handle, indent=2, sort_keys=True)
            handle.write("\n")
    with atomic_file(path, "wb") as handle:
        handle.write(blob)
    return path


def read_tensors(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a tensor dict from safetensors, or from a ``.pt`` file without unpickling code.

    Raises
    ------
    CheckpointError
        The file is missing, corrupt, or a pickle that ``weights_only`` loading refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix in _PICKLE_SUFFIXES:
        return _read_torch_file(path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as err:
        hint = " (it looks like a pickle; lumos never unpickles)" if _is_pickle(path) else ""
        raise CheckpointError(f"{path} is not a valid safetensors file{hint}: {err}") from err


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON sidecar of a weights file, or ``{}`` when there is none."""
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{side} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{side} must hold a JSON object, got {type(data).__name__}")
    return data


def _read_torch_file(path: Path) -> dict[str, Tensor]:
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as err:
        raise CheckpointError(f"refusing to load {path}: it needs full unpickling, which can run "
                              "arbitrary code; re-save it as safetensors "
                              f"({err.__class__.__name__})") from err
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a dict of tensors (a state dict)")
    return {str(k): v for k, v in obj.items()}


def _is_pickle(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(2)
    return len(head) == 2 and head[0] == 0x80 and head[1] <= 5


def _jsonable(value: Any) -> Any:
    """Tuples to lists, tensors and numpy scalars to Python numbers, recursively."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Tensor):
        return value.tolist()
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value
