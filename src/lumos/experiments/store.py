"""Saving and loading a finished evaluation stage, so ``lumos reproduce`` can resume.

A stage writes ``results.safetensors`` (inputs, targets, attributions, curves, axiom data) and
``results.json`` (titles, seconds, errors, the configuration hash) atomically; a stage is
finished when both exist and the hash matches the current configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

from lumos.atomic import write_bytes_atomic
from lumos.experiments.methods import parse
from lumos.experiments.study import Measured, Result
from lumos.explanation import Explanation
from lumos.store import keyed

_FIELDS = ("attribution", "output", "target", "delta", "baseline_output", "n_steps", "converged",
           "error")


def config_hash(*parts: Any) -> str:
    """Short stable hash of JSON-able configuration parts (:func:`lumos.store.keyed`)."""
    return keyed.settings_hash(*parts)


def save(folder: Path, tensors: dict[str, Tensor], results: dict[str, Result],
         measured: dict[str, Measured], meta: dict[str, Any]) -> None:
    """Write the stage's files (tensors first, the JSON that marks it finished last)."""
    from safetensors.torch import save

    flat = {f"data/{k}": v.contiguous() for k, v in tensors.items()}
    for key, r in results.items():
        if r.explanation is not None:
            flat.update(_explanation(key, r.explanation))
    for key, m in measured.items():
        flat[f"measure/{key}/morf"] = m.morf.contiguous()
        flat[f"measure/{key}/lerf"] = m.lerf.contiguous()
    payload = save({k: v.detach().cpu() for k, v in flat.items()})
    write_bytes_atomic(payload, folder / "results.safetensors")
    info = {"methods": {k: {"seconds": r.seconds, "error": r.error, "device": r.device}
                        for k, r in results.items()},
            **meta}
    write_bytes_atomic(json.dumps(info, indent=1).encode(), folder / "results.json")


def _explanation(key: str, exp: Explanation) -> dict[str, Tensor]:
    out = {f"exp/{key}/{f}": getattr(exp, f) for f in _FIELDS if getattr(exp, f) is not None}
    for k, (name, value) in enumerate(exp.layers.items()):
        out[f"layer/{key}/{k:04d}/{name}"] = value
    return out


def load(folder: Path, expected_hash: str) -> tuple[dict[str, Tensor], dict[str, Result],
                                                     dict[str, Measured], dict[str, Any]] | None:
    """The finished stage in ``folder``, or ``None`` if absent or made with other settings."""
    info_path, data_path = folder / "results.json", folder / "results.safetensors"
    info = keyed.read_record(info_path)
    if info is None or not data_path.is_file() or info.get(keyed.HASH_KEY) != expected_hash:
        return None
    from safetensors.torch import load_file

    flat = load_file(str(data_path))
    tensors = {k[5:]: v for k, v in flat.items() if k.startswith("data/")}
    results = {key: _result(key, flat, m) for key, m in info["methods"].items()}
    measured = {}
    for key in {k.split("/")[1] for k in flat if k.startswith("measure/")}:
        measured[key] = Measured(morf=flat[f"measure/{key}/morf"],
                                 lerf=flat[f"measure/{key}/lerf"])
    return tensors, results, measured, info


def _result(key: str, flat: dict[str, Tensor], info: dict[str, Any]) -> Result:
    method = parse(key)
    if info.get("error"):
        return Result(method, error=info["error"])
    fields = {f: flat.get(f"exp/{key}/{f}") for f in _FIELDS}
    prefix = f"layer/{key}/"
    layers = {k[len(prefix) + 5:]: v for k, v in sorted(flat.items()) if k.startswith(prefix)}
    assert fields["attribution"] is not None and fields["output"] is not None
    exp = Explanation(method=method.kind, layers=layers, **fields)  # type: ignore[arg-type]
    return Result(method, exp, float(info["seconds"]), device=str(info.get("device", "cpu")))


def finished(folder: Path, name: str, expected_hash: str) -> bool:
    """Whether ``folder/name``'s JSON sidecar records ``expected_hash``."""
    return keyed.finished(folder / name, expected_hash)

