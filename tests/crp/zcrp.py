"""The zennit-crp oracle: run zennit-crp 0.6 on a model and inputs lumos gives it, in a
subprocess (:mod:`zcrp_worker`), and get its heatmaps, concept relevances and references.

zennit-crp lives in ``.venv/zennit-crp`` (``make zennit-crp``: zennit-crp 0.6.0 and zennit 0.5.1,
installed with ``--no-deps`` because zennit-crp pins ``zennit<=0.4.6`` and ``torch<2``), or in
the folder ``$LUMOS_ZENNIT_CRP`` names. zennit 0.5.1 rather than 0.4.6: its generalised Gamma
rule is the one lumos implements (0.4.6's Gamma modifies the weights for every output sign,
0.5.1 explains positive and negative outputs each with their own terms; the two agree where
every convolution's output feeds a ReLU, as in VGG-16, and differ on ResNet's residual sums).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("zcrp_worker.py")


def folder() -> Path | None:
    """Where zennit-crp is installed, or None."""
    path = Path(os.environ.get("LUMOS_ZENNIT_CRP", ROOT / ".venv" / "zennit-crp"))
    return path if (path / "crp" / "attribution.py").is_file() else None


def run(model: nn.Module, jobs: list[dict[str, Any]], timeout: float = 3000) -> list[Any]:
    """Answers of zennit-crp to ``jobs`` (see :mod:`zcrp_worker`) on ``model``."""
    where = folder()
    if where is None:
        raise RuntimeError("zennit-crp is not installed: run `make zennit-crp` (or point "
                           "LUMOS_ZENNIT_CRP at a folder holding zennit-crp and zennit)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(where), str(WORKER.parent)]),
           "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.pt", Path(tmp) / "out.pt"
        torch.save({"model": model, "jobs": jobs}, src)
        done = subprocess.run([sys.executable, str(WORKER), str(src), str(dst)], env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"zennit-crp failed:\n{done.stderr[-3000:]}")
        return list(torch.load(dst, weights_only=False)["answers"])


def job(x: Tensor, target: int, conditions: list[dict[str, Any]], composite: str,
        canonizer: str | None, record: list[str] | None = None, low: float = -3.0,
        high: float = 3.0) -> dict[str, Any]:
    """A ``CondAttribution`` job of one sample ``x`` ``(1, ...)`` under each of
    ``conditions`` (lumos's form ``{layer: channel}``; ``"y": target`` is added)."""
    zc = [{**{k: [v] if isinstance(v, int) else list(v) for k, v in c.items()}, "y": [target]}
          for c in conditions]
    return {"kind": "cond", "x": x, "conditions": zc, "composite": composite,
            "canonizer": canonizer, "record": list(record or []), "low": low, "high": high}


def conditional(model: nn.Module, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """zennit-crp's answer to one :func:`job`."""
    return dict(run(model, [job(*args, **kwargs)])[0])


def channel_sums(relevance: Tensor) -> Tensor:
    """``(B, C)`` sums over positions of a ``(B, C, ...)`` layer relevance."""
    return relevance.reshape(*relevance.shape[:2], -1).sum(-1)
