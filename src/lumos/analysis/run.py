"""SpRAy over a store directory: every class of one method, compared with other methods."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lumos.analysis import agreement, layout
from lumos.analysis.features import heatmap_features
from lumos.analysis.spray import SprayResult, SpraySettings, add_clusterings, spray


@dataclass
class ClassAnalysis:
    """SpRAy of one class of one method, with the per-cluster summaries the CLI prints."""

    label: int
    rows: np.ndarray
    index: np.ndarray
    result: SprayResult
    prototypes: dict[int, np.ndarray]
    border_fraction: np.ndarray
    rank_correlation: dict[str, np.ndarray] = field(default_factory=dict)

    def summary(self) -> list[str]:
        """A few lines: size, eigengap choice, and per chosen cluster its size, border share
        and agreement with the other methods."""
        r = self.result
        lam = ", ".join(f"{v:.3f}" for v in r.smallest_first[:8])
        lines = [f"class {self.label}: {len(self.rows)} heatmaps, eigengap chooses k = "
                 f"{r.eigengap_k} (eigenvalues {lam}, ...)"]
        labels = r.chosen
        border = agreement.per_cluster(self.border_fraction, labels)
        rho = {k: agreement.per_cluster(v, labels) for k, v in self.rank_correlation.items()}
        for c in range(r.eigengap_k):
            extra = "".join(f", rank corr. with {k} {v[c]:+.2f}" for k, v in rho.items())
            lines.append(f"  cluster {c}: {int((labels == c).sum())} samples, "
                         f"{border[c]:.1%} of |relevance| on the border{extra}")
        return lines


def analyse(directory: str | os.PathLike[str], method: str, labels: Sequence[int] | None = None,
            settings: SpraySettings | None = None, compare: Sequence[str] = (),
            border: int | None = None, progress: bool = True,
            class_names: Sequence[str] | None = None) -> tuple[Path, list[ClassAnalysis]]:
    """SpRAy of ``method`` in ``directory`` for each class (or those in ``labels``).

    Writes ``DIR/analysis-<method>.h5`` (see :mod:`lumos.analysis.layout`) and returns its path
    with the per-class results. ``compare``: other method keys whose heatmaps of the same
    samples are rank-correlated with this method's.
    """
    from lumos.progress import Progress

    s = settings or SpraySettings()
    source = layout.MethodFile.open(layout.attribution_path(directory, method))
    others = {k: layout.MethodFile.open(layout.attribution_path(directory, k))
              for k in compare if k != method}
    present = np.unique(source.label)
    chosen = present if labels is None else np.asarray(sorted(set(labels)), dtype=np.int64)
    absent = sorted(set(chosen.tolist()) - set(present.tolist()))
    if absent:
        raise layout.StoreError(f"class {absent[0]} has no heatmaps in {source.path.name} "
                                f"(classes there: {', '.join(map(str, present))})")
    rows = {int(c): np.flatnonzero(source.label == c) for c in chosen}
    small = [c for c, r in rows.items() if len(r) < 4]
    if small:
        raise layout.StoreError(f"class {small[0]} has {len(rows[small[0]])} heatmaps; SpRAy "
                                "needs at least 4")
    total = int(sum(len(r) for r in rows.values()))
    bar = Progress(3 * total + 3 * len(rows), f"spray {method}", enabled=progress)
    features = _features(source, rows, s, bar)
    h, w = source.shape[-2:]
    width = border if border is not None else agreement.default_border((h, w))
    results: list[ClassAnalysis] = []
    for c, r in rows.items():
        res = spray(features[c], s, tick=lambda stage, n: bar.update(n))
        results.append(ClassAnalysis(c, r, source.index[r], res, {}, np.zeros(0)))
    # every class gets every eigengap's k too: ViRelAy lists the first class's clusterings
    # and looks each of them up in every class
    wanted = {*s.cluster_counts, *(a.result.eigengap_k for a in results)}
    for a in results:
        add_clusterings(a.result, sorted(wanted), s)
    _second_pass(source, results, width, bar)
    for key, other in others.items():
        for a in results:
            a.rank_correlation[key] = _compare(source, other, a)
    bar.close()
    names = class_names or []
    out = layout.write_analysis(
        layout.analysis_path(directory, method), method,
        {**s.to_dict(), "border_width": width, "compare": list(others)},
        {str(a.label): _record(a, names, width) for a in results})
    return out, results


def _features(source: layout.MethodFile, rows: dict[int, np.ndarray], s: SpraySettings,
              bar: Any) -> dict[int, np.ndarray]:
    """Pass 1: pooled, normalised features of every analysed row, per class."""
    parts: dict[int, list[np.ndarray]] = {c: [] for c in rows}
    for start, maps in source.blocks():
        labels = source.label[start:start + len(maps)]
        for c in rows:
            pick = labels == c
            if pick.any():
                try:
                    parts[c].append(heatmap_features(maps[pick], s.size, s.normalize))
                except ValueError as err:
                    raise layout.StoreError(f"class {c} of {source.path.name}: {err}") from err
                bar.update(int(pick.sum()))
    return {c: np.concatenate(p) for c, p in parts.items()}


def _second_pass(source: layout.MethodFile, results: list[ClassAnalysis], width: int,
                 bar: Any) -> None:
    """Pass 2: cluster mean heatmaps of every clustering and the border share of every row."""
    h, w = source.shape[-2:]
    sums = {a.label: {k: np.zeros((k, h, w)) for k in a.result.clusterings} for a in results}
    border = {a.label: np.zeros(len(a.rows)) for a in results}
    where = {a.label: 0 for a in results}
    for start, maps in source.blocks():
        labels = source.label[start:start + len(maps)]
        for a in results:
            pick = np.flatnonzero(labels == a.label)
            if len(pick) == 0:
                continue
            m, at = maps[pick].astype(np.float64), where[a.label]
            border[a.label][at:at + len(pick)] = agreement.border_fraction(m, width)
            for k, lab in a.result.clusterings.items():
                np.add.at(sums[a.label][k], lab[at:at + len(pick)], m)
            where[a.label] += len(pick)
            bar.update(len(pick))
    for a in results:
        a.border_fraction = border[a.label]
        for k, lab in a.result.clusterings.items():
            count = np.bincount(lab, minlength=k).astype(np.float64)
            a.prototypes[k] = sums[a.label][k] / np.maximum(count, 1.0)[:, None, None]


def _compare(source: layout.MethodFile, other: layout.MethodFile, a: ClassAnalysis
             ) -> np.ndarray:
    """Rank correlation of this method's and ``other``'s maps of the same samples (NaN where
    ``other`` lacks a sample)."""
    position = {int(i): r for r, i in enumerate(other.index)}
    rho = np.full(len(a.rows), np.nan)
    found = np.array([int(i) in position for i in a.index], dtype=bool)
    if not found.any():
        return rho
    theirs = np.array([position[int(i)] for i in a.index[found]])
    for lo in range(0, int(found.sum()), 1024):
        mine_rows = a.rows[found][lo:lo + 1024]
        rho_part = agreement.rank_correlation(source.rows(mine_rows),
                                              other.rows(theirs[lo:lo + 1024]))
        rho[np.flatnonzero(found)[lo:lo + 1024]] = rho_part
    return rho


def _record(a: ClassAnalysis, names: Sequence[str], width: int) -> dict[str, Any]:
    r = a.result
    return {"name": names[a.label] if a.label < len(names) else f"class {a.label}",
            "index": a.index, "row": a.rows, "spectral": r.spectral,
            "eigenvalue": r.eigenvalues, "tsne": r.tsne, "umap": r.umap,
            "drawn_from": r.drawn_from,
            "clusterings": r.clusterings, "prototypes": a.prototypes,
            "eigengap_k": r.eigengap_k, "kmeans_on": r.kmeans_on,
            "agreement": {"border_width": width, "border_fraction": a.border_fraction,
                          "rank_correlation": a.rank_correlation}}
