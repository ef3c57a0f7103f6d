"""zennit-crp 0.6 as the oracle, run in its own process: ``python zcrp_worker.py IN.pt OUT.pt``.

zennit-crp pins ``zennit<=0.4.6`` and ``torch<2``, so it never runs in the test process: the
harness (:mod:`zcrp`) starts this script with ``PYTHONPATH`` set to a folder that holds
zennit-crp 0.6.0 and zennit 0.5.1 (installed with ``--no-deps``; see ``make zennit-crp``), and
talks to it through two ``torch.save`` files.

``IN.pt`` holds ``{"model": nn.Module, "jobs": [...]}``; each job is a dict with ``kind``:

- ``"cond"``: ``CondAttribution`` on ``x`` with ``conditions`` (zennit-crp's dicts, ``"y"``
  the target), ``composite`` (``"EpsilonPlus"`` or ``"EpsilonGammaBox"`` with ``low``/``high``)
  and ``canonizer`` (``"vgg"``, ``"resnet"``, ``"sequential"`` or ``None``), recording
  ``record`` layers; answers the full input relevance ``heatmap`` (rows in condition order)
  and ``relevances`` ``{layer: tensor}``.
- ``"fv"``: ``FeatureVisualization.run`` over ``x`` with labels ``y`` for the layers of
  ``layers`` (``ChannelConcept``), answers ``{layer: {"rel_index", "rel_value", "act_index",
  "act_value"}}``, each ``(40, channels)``: zennit-crp's top-40 per channel, best first.

BatchNorm ``eps`` is moved into ``running_var`` here (the same function): Zennit's
BatchNorm merge leaves ``eps`` in place, a 5e-6 relative change per BatchNorm otherwise.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def exact_batchnorm(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.eps:
            with torch.no_grad():
                assert m.running_var is not None
                m.running_var += m.eps
            m.eps = 0.0
    return model


def composite(job: dict[str, Any]) -> Any:
    from zennit import composites as zc
    from zennit import torchvision as zt

    canon = {"vgg": zt.VGGCanonizer, "resnet": zt.ResNetCanonizer,
             "sequential": zt.SequentialMergeBatchNorm}
    canonizers = [canon[job["canonizer"]]()] if job.get("canonizer") else None
    if job["composite"] == "EpsilonGammaBox":
        return zc.EpsilonGammaBox(low=job["low"], high=job["high"], canonizers=canonizers)
    return getattr(zc, job["composite"])(canonizers=canonizers)


def cond(model: nn.Module, job: dict[str, Any]) -> dict[str, Any]:
    from crp.attribution import CondAttribution

    class FullInput(CondAttribution):  # the input relevance itself, not summed over channels
        def heatmap_modifier(self, data: torch.Tensor, on_device: Any = None) -> torch.Tensor:
            assert data.grad is not None
            return data.grad.detach().clone()

    attribution = FullInput(model)
    x = job["x"].clone().requires_grad_(True)
    result = attribution(x, job["conditions"], composite(job), record_layer=job["record"])
    return {"heatmap": result.heatmap, "relevances": dict(result.relevances)}


class _Items(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


def fv(model: nn.Module, job: dict[str, Any]) -> dict[str, Any]:
    from crp.attribution import CondAttribution
    from crp.concepts import ChannelConcept
    from crp.visualization import FeatureVisualization

    with tempfile.TemporaryDirectory() as tmp:
        vis = FeatureVisualization(CondAttribution(model), _Items(job["x"], job["y"]),
                                   {layer: ChannelConcept() for layer in job["layers"]},
                                   path=tmp)
        vis.run(composite(job), 0, len(job["x"]), batch_size=job.get("batch_size", 64))
        out = {}
        for layer in job["layers"]:
            parts = {}
            for mode, key in (("RelMax", "rel"), ("ActMax", "act")):
                folder = Path(tmp) / f"{mode}_sum_normed"
                parts[f"{key}_index"] = torch.from_numpy(np.load(folder / f"{layer}_data.npy"))
                parts[f"{key}_value"] = torch.from_numpy(np.load(folder / f"{layer}_rel.npy"))
            out[layer] = parts
    return out


def main(src: str, dst: str) -> None:
    payload = torch.load(src, weights_only=False)
    model = exact_batchnorm(payload["model"]).eval()
    import zennit

    import crp

    answers: list[Any] = []
    for job in payload["jobs"]:
        answers.append(cond(model, job) if job["kind"] == "cond" else fv(model, job))
    versions = {"zennit": getattr(zennit, "__version__", "?"),
                "crp": str(Path(crp.__file__).parent)}
    torch.save({"answers": answers, "versions": versions}, dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
