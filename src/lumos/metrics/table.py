"""The result of :func:`lumos.metrics.evaluate`: methods x metrics, mean and standard error."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from lumos.atomic import write_bytes_atomic


def mean_stderr(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample std / sqrt(n)) of the finite values; NaN when none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    mean = sum(finite) / len(finite)
    if len(finite) < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in finite) / (len(finite) - 1)
    return mean, math.sqrt(var / len(finite))


@dataclass
class EvaluationResult:
    """Per-sample values of every metric for every method, with summaries.

    Attributes
    ----------
    methods, metrics:
        Row and column names, in the order given.
    values:
        ``values[method][metric]``: one float per evaluated sample.
    better:
        ``better[metric]``: ``"higher"`` or ``"lower"``, for reading the table.
    info:
        Free-form settings recorded with the run (data size, device, seed, ...).
    families:
        ``families[metric]``: the metric's family (faithfulness, robustness, ...).
    """

    methods: list[str]
    metrics: list[str]
    values: dict[str, dict[str, list[float]]]
    better: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    families: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationResult:
        """The result from :meth:`to_dict` with ``samples=True`` (``null`` read as NaN)."""
        if "values" not in data:
            raise ValueError("the data holds no per-sample values; write it with samples=True")
        values = {m: {k: [math.nan if v is None else float(v) for v in vs]
                      for k, vs in row.items()} for m, row in data["values"].items()}
        return cls(list(data["methods"]), list(data["metrics"]), values,
                   dict(data.get("better", {})), dict(data.get("info", {})),
                   dict(data.get("families", {})))

    def mean(self, method: str, metric: str) -> float:
        """Mean of one cell."""
        return mean_stderr(self.values[method][metric])[0]

    def stderr(self, method: str, metric: str) -> float:
        """Standard error of one cell's mean."""
        return mean_stderr(self.values[method][metric])[1]

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{method: {metric: {"mean", "stderr", "n"}}}``."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for method in self.methods:
            out[method] = {}
            for metric in self.metrics:
                mean, se = mean_stderr(self.values[method][metric])
                out[method][metric] = {"mean": mean, "stderr": se,
                                       "n": len(self.values[method][metric])}
        return out

    def to_dict(self, samples: bool = False) -> dict[str, Any]:
        """Plain data for JSON; per-sample values only when ``samples``."""
        data: dict[str, Any] = {"methods": self.methods, "metrics": self.metrics,
                                "better": self.better, "families": self.families,
                                "info": self.info, "summary": self.summary()}
        if samples:
            data["values"] = self.values
        return data

    def to_json(self, path: str | os.PathLike[str] | None = None, samples: bool = False) -> str:
        """The result as JSON text (NaN as ``null``); also written atomically to ``path``."""
        text = json.dumps(_nan_to_none(self.to_dict(samples)), indent=2) + "\n"
        if path is not None:
            write_bytes_atomic(text.encode("utf-8"), path)
        return text

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """One row per method and metric: mean, stderr, n; also written atomically to ``path``."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["method", "metric", "mean", "stderr", "n", "better"])
        for method, row in self.summary().items():
            for metric, cell in row.items():
                writer.writerow([method, metric, repr(cell["mean"]), repr(cell["stderr"]),
                                 int(cell["n"]), self.better.get(metric, "")])
        text = buffer.getvalue()
        if path is not None:
            write_bytes_atomic(text.encode("utf-8"), path)
        return text

    def by_family(self) -> dict[str, list[str]]:
        """The metrics grouped by family, families and metrics in the order first seen."""
        groups: dict[str, list[str]] = {}
        for metric in self.metrics:
            groups.setdefault(self.families.get(metric, "metrics"), []).append(metric)
        return groups

    def best(self, metric: str) -> str | None:
        """The method with the best mean for ``metric`` (``None`` when nothing is finite)."""
        means = {m: self.mean(m, metric) for m in self.methods}
        finite = {m: v for m, v in means.items() if math.isfinite(v)}
        if not finite or metric not in self.better:
            return None
        pick = max if self.better[metric] == "higher" else min
        return pick(finite, key=lambda m: finite[m])

    def tables(self, digits: int = 3) -> str:
        """One plain-text table per family (methods x metrics), each headed by its family."""
        return "\n\n".join(f"{family}\n{self.table(digits, metrics)}"
                            for family, metrics in self.by_family().items())

    def table(self, digits: int = 3, metrics: list[str] | None = None) -> str:
        """A plain-text table: one row per method, ``mean ± stderr`` per metric (``*`` marks
        the best method of each column; ``↑``/``↓`` say which way is better). A mean over
        fewer samples than evaluated says how many (``(n=3)``); ``n/a``: no sample has one."""
        metrics = self.metrics if metrics is None else metrics
        head = [f"{m} ({'↑' if self.better.get(m) == 'higher' else '↓'})"
                if m in self.better else m for m in metrics]
        best = {m: self.best(m) for m in metrics}
        rows = [[method] + [self._cell(method, m, digits) + (" *" if best[m] == method else "")
                            for m in metrics]
                for method in self.methods]
        cols = [["method", *head], *rows]
        widths = [max(len(r[i]) for r in cols) for i in range(len(cols[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in cols]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def _cell(self, method: str, metric: str, digits: int) -> str:
        values = self.values[method][metric]
        mean, se = mean_stderr(values)
        scored = sum(1 for v in values if math.isfinite(v))
        if not scored:
            return "n/a"   # no sample has a value (consistency: no two share a label, say)
        cell = f"{mean:.{digits}g} ± {se:.2g}"
        return cell if scored == len(values) else f"{cell} (n={scored})"

    def __str__(self) -> str:
        return self.table()


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value
