"""Measure the explanations of a finished store: the stored maps, the stored inputs, its model.

The metrics that only need an attribution (pixel flipping AOPC, insertion / deletion,
infidelity, the faithfulness, localisation, complexity and completeness metrics) run on the
stored maps; metrics that re-run the method (robustness, randomisation, input invariance) or
time it (runtime) need the method itself and are refused here (the manifest holds each
method's timing). Localisation masks come from the store's ``folder:`` dataset
(``DIR/<class>/<name>.mask.png``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lumos.errors import UserError
from lumos.store.reader import open_store
from lumos.store.sources import load_model

STORE_METRICS = ("aopc_morf", "aopc_lerf", "insertion", "deletion", "infidelity", "sparseness",
                 "completeness_error")


def _needs_method(metric: Any) -> bool:
    spec = getattr(metric, "spec", None)
    return getattr(metric, "name", "") == "runtime" or (spec is not None
                                                        and "explain" in spec.needs)


class _Stored:
    """The stored attributions of one method, handed out batch after batch in store order."""

    def __init__(self, attribution: Any) -> None:
        self.attribution, self.at = attribution, 0

    def __call__(self, x: Tensor, target: Tensor | None) -> Tensor:
        block = torch.from_numpy(self.attribution[self.at:self.at + len(x)]).to(x)
        self.at += len(x)
        return block


def evaluate_store(folder: str | os.PathLike[str], metrics: list[Any] | None = None, *,
                   limit: int | None = None, batch_size: int = 50,
                   device: str | torch.device = "cpu", progress: bool = True,
                   model: nn.Module | None = None) -> Any:
    """Evaluate every method of the store in ``folder`` on its first ``limit`` samples.

    The model is reloaded from the manifest's ``source``; a store written from a Python
    ``nn.Module`` needs that ``model`` (used as is: put it on ``device`` in eval mode).
    Returns a :class:`lumos.metrics.table.EvaluationResult` (one row per stored method).
    """
    from lumos.metrics.evaluate import evaluate, resolve_metrics

    try:
        chosen = resolve_metrics(list(metrics or STORE_METRICS[:5]))
    except (ValueError, TypeError) as err:
        raise UserError(str(err)) from err
    refused = [m.name for m in chosen if _needs_method(m)]
    if refused:
        raise UserError(f"metric {refused[0]!r} re-runs or times the method and cannot run on "
                        "stored maps; use lumos evaluate --model/--dataset --method instead")
    with open_store(folder) as store:
        m = store.manifest
        if m["target"] not in ("predicted", "label"):
            raise UserError(f"the store explains class {m['target']} for every sample; "
                            "evaluate needs --target predicted or label stores")
        origin = m.get("source") or {}
        if model is None:
            if not origin.get("model"):
                raise UserError(f"{folder} was written from a Python nn.Module; pass it: "
                                "evaluate_store(folder, model=...)")
            model = load_model(origin["model"], origin.get("weights"))[0].model.to(device)
        n = min(len(store), limit or len(store))
        inputs = store.h5(None)
        x = torch.from_numpy(inputs["data"][:n]).to(device)
        y = torch.from_numpy(inputs["label"][:n].astype("int64")).to(device)
        methods = {key: _Stored(store.h5(key)["attribution"]) for key in store.methods}
        masks = _masks(origin, n) if any(getattr(c, "family", "") == "localisation"
                                          for c in chosen) else None
        result = evaluate(model, (x, y), methods, chosen, target=m["target"], masks=masks,
                          batch_size=batch_size, device=device, progress=progress)
    result.info.update({"model": m["model"]["spec"], "data": f"store {Path(folder)}",
                        "dataset": m["dataset"]["spec"]})
    return result


def _masks(origin: dict[str, Any], n: int) -> Tensor:
    """Masks of the store's first ``n`` samples, from its ``folder:`` dataset."""
    from lumos.store.sources import dataset_masks, load_data

    spec = str(origin.get("dataset") or "")
    if not spec.startswith("folder:"):
        raise UserError(f"localisation metrics need masks; this store's dataset {spec or '?'} "
                        "has none (a folder:DIR dataset can hold DIR/<class>/<name>.mask.png)")
    clf = load_model(origin["model"], origin.get("weights"))[0]
    source = load_data(spec, clf, origin.get("split") or "all")
    return dataset_masks(source.dataset, n, spec)
