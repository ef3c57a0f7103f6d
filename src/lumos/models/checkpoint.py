"""Safe checkpoints: safetensors weights plus a JSON sidecar, never a pickle.

A checkpoint ``DIR/model.safetensors`` comes with ``DIR/model.json`` that says how to rebuild
the model (architecture name and keyword arguments), what it was trained on (dataset, class
names, input normalisation) and how well it did (metrics), plus the lumos version that wrote it.
Both files are written to a temp file in the same folder and renamed, so a crash never leaves a
half-written checkpoint. Loading reads tensors only: a ``.pt``/``.pth`` file is opened with
``torch.load(weights_only=True)`` and anything needing real unpickling is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from lumos.models.architectures import build
from lumos.models.tensorio import (
    CheckpointError,
    read_meta,
    read_tensors,
    sidecar_path,
    write_tensors,
)

__all__ = ["CheckpointError", "load_checkpoint", "read_meta", "read_tensors", "save_checkpoint",
           "sidecar_path", "write_tensors"]


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, *,
                    architecture: Mapping[str, Any], dataset: str | None = None,
                    classes: list[str] | None = None,
                    normalization: Mapping[str, list[float]] | None = None,
                    metrics: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Save ``model``'s state dict and a sidecar that lets :func:`load_checkpoint` rebuild it.

    Parameters
    ----------
    architecture:
        ``{"name": <architecture>, "kwargs": {...}}``, passed to
        :func:`lumos.models.architectures.build`.
    normalization:
        ``{"mean": [...], "std": [...]}`` the model expects on inputs in ``[0, 1]``.
    """
    from lumos import __version__

    if "name" not in architecture:
        raise ValueError("architecture needs a 'name' (a lumos.models.zoo architecture)")
    meta = {"format": "lumos-checkpoint", "lumos_version": __version__,
            "architecture": dict(architecture), "dataset": dataset, "classes": classes,
            "normalization": dict(normalization) if normalization else None,
            "metrics": dict(metrics or {}), **dict(extra or {})}
    return write_tensors(path, model.state_dict(), meta)


def load_checkpoint(path: str | os.PathLike[str], model: nn.Module | None = None,
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint into ``model`` (or a model rebuilt from the sidecar); eval mode.

    Returns
    -------
    model, meta:
        The model with the saved weights, and the sidecar (``{}`` if absent).
    """
    state = read_tensors(path)
    meta = read_meta(path)
    if model is None:
        arch = meta.get("architecture")
        if not isinstance(arch, dict) or "name" not in arch:
            raise CheckpointError(f"{sidecar_path(path)} does not say which architecture to "
                                  "build; pass the model to load the weights into")
        model = build(arch["name"], **arch.get("kwargs", {}))
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"{path} does not fit the model: {first}") from err
    return model.eval(), meta
