"""The study's metrics by family: measure the explained batch, then one report table per family.

The report measures what the methods already explained (their stored attributions) with a
selection of every family that runs in seconds to minutes on a laptop; the metrics that
re-explain perturbed inputs or randomised models (robustness, randomisation) re-run the method
with the settings the study used, on the first ``n`` inputs. Localisation needs masks of where
the evidence is: the study's datasets have none (the Clever-Hans demo does).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from lumos.atomic import write_bytes_atomic
from lumos.experiments.methods import Domain, build
from lumos.experiments.study import Progress, Result
from lumos.viz.report import Block, Note, Table


def report_metrics(image: int) -> list[Any]:
    """The metrics of the report for images of side ``image`` (patch sizes follow it)."""
    from lumos import metrics as M

    patch = max(2, image // 7)
    return [
        M.FaithfulnessCorrelation(n_runs=30), M.FaithfulnessEstimate(features_in_step=image),
        M.Monotonicity(features_in_step=image), M.Selectivity(patch_size=patch),
        M.RegionPerturbation(patch_size=patch), M.ROAD(percentages=(10, 30, 50, 70, 90)),
        "sufficiency",
        M.MaxSensitivity(n_samples=3), M.LocalLipschitzEstimate(n_samples=3),
        M.RelativeInputStability(n_samples=3), "consistency",
        "sparseness", "complexity", "effective_complexity",
        "random_logit", M.MPRT(reduce="last"),
        "completeness_error", M.NonSensitivity(features_in_step=image),
    ]


def measure_families(model: nn.Module, x: Tensor, target: Tensor, results: Mapping[str, Result],
                     domain: Domain, options: Mapping[str, dict[str, Any]], n: int, seed: int,
                     progress: Progress, metrics: Sequence[Any] | None = None) -> Any:
    """Evaluate every method that ran on the first ``n`` inputs with the family metrics."""
    from lumos.metrics import ModelMethod, evaluate, random_attribution

    ran = {k: r for k, r in results.items() if r.explanation is not None}
    count = min(n, len(x))
    methods: dict[str, Any] = {
        r.method.title: ModelMethod(_factory(r, domain, dict(options.get(k, {}))))
        for k, r in ran.items()}
    methods["random"] = random_attribution(seed)
    given = {r.method.title: r.explanation.attribution[:count]  # type: ignore[union-attr]
             for r in ran.values()}
    chosen = list(metrics) if metrics is not None else report_metrics(int(x.shape[-1]))
    progress.say(f"metrics by family: {len(methods)} methods x {len(chosen)} metrics on "
                 f"{count} inputs")
    result = evaluate(model, (x[:count], target[:count]), methods, chosen, target="label",
                      attributions=given, batch_size=count, seed=seed, progress=False)
    progress.say("metrics by family: done")
    return result


def _factory(r: Result, domain: Domain, options: dict[str, Any]) -> Any:
    def make(model: nn.Module) -> Any:
        return build(r.method, model, domain, options)
    return make


def family_tables(result: Any, n: int, caption: str = "") -> list[Block]:
    """One table per family: methods x metrics, mean ± standard error, the best marked."""
    blocks: list[Block] = []
    for family, names in result.by_family().items():
        rows = [(method, [_cell(result, method, m) for m in names])
                for method in result.methods]
        best: list[Any] = [("max" if result.better.get(m) == "higher" else "min") for m in names]
        heads = [f"{m} ({'↑' if result.better.get(m) == 'higher' else '↓'})" for m in names]
        blocks.append(Table(columns=heads, rows=rows, best=best,
                            title=f"{family.capitalize()} ({n} inputs)",
                            caption=caption or "Mean ± standard error; ↑ higher is better, "
                            "↓ lower is better; the best method per column is marked."))
    blocks.append(Note("Localisation metrics need masks of where the evidence is; these "
                       "inputs have none (lumos demo --clever-hans scores them on the planted "
                       "mark).", level="info"))
    return blocks


def _cell(result: Any, method: str, metric: str) -> Any:
    mean, se = result.mean(method, metric), result.stderr(method, metric)
    return None if not math.isfinite(mean) else (mean, se)


def save(result: Any, path: Path) -> None:
    """Write the result with its per-sample values (atomically)."""
    write_bytes_atomic(result.to_json(samples=True).encode(), path)


def load(path: Path) -> Any:
    """The result :func:`save` wrote, or ``None`` when there is none."""
    from lumos.metrics.table import EvaluationResult

    if not path.is_file():
        return None
    return EvaluationResult.from_dict(json.loads(path.read_text()))
