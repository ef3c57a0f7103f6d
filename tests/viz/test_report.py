"""The HTML report from synthetic attributions: self-contained, escaped, best values marked."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from lumos.viz import plots
from lumos.viz.image import heatmap, to_image
from lumos.viz.report import (
    Code,
    Figure,
    Gallery,
    KeyValues,
    Note,
    Report,
    Row,
    Section,
    Table,
    Text,
    render,
    write,
)


def _gallery() -> Gallery:
    torch.manual_seed(0)
    rows = []
    for label in range(3):
        x = torch.rand(1, 28, 28)
        attrs = [torch.randn(1, 28, 28) for _ in range(3)]
        rows.append(Row(label=f"digit {label}", caption=f"pred {label} (0.98) / true {label}",
                        correct=label != 2,
                        images=[to_image(x), *(heatmap(a) for a in attrs)]))
    return Gallery(name="mnist", columns=["input", "IG", "LRP ε+", "Gradient"],
                   kinds=["input", "ig", "lrp", "baseline"], rows=rows, title="Digits")


def _report() -> Report:
    table = Table(columns=["AOPC", "time (s)"], best=["max", "min"],
                  rows=[("IG", [(0.5, 0.01), 2.0]), ("LRP", [0.7, 0.1]), ("random", [0.1, None])])
    curves = plots.curves({"IG": np.random.rand(4, 10), "random": np.random.rand(10)},
                          xlabel="fraction flipped", ylabel="score")
    return Report(title="Test <report>", subtitle="synthetic", sections=[
        Section("Setup", [KeyValues({"model": "cnn", "accuracy": "0.98"}), Text("a < b & c"),
                          Note("LRP skipped: not installed")]),
        Section("Heatmaps", [_gallery()]),
        Section("Metrics", [table, Figure(curves, caption="pixel flipping")]),
        Section("Rerun", [Code("[data]\ndataset = 'mnist'", title="config")]),
    ])


def test_report_is_self_contained_and_escaped(tmp_path) -> None:
    text = render(_report())
    assert "<script" not in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert re.findall(r'src="([a-z]+):', text) == ["data"] * len(re.findall(r"<img ", text))
    assert "default-src 'none'" in text                      # CSP: no request can leave
    assert "Test &lt;report&gt;" in text and "a &lt; b &amp; c" in text
    assert text.count('data-kind="ig"') == 3 and text.count('data-kind="lrp"') == 3
    assert 'class="wrong"' in text and "LRP skipped" in text
    assert "@media print" in text
    path = write(_report(), tmp_path / "out" / "report.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_best_value_per_column_is_marked() -> None:
    text = render(_report())
    best = re.findall(r'<td class="num best">([^<]*)</td>', text)
    assert best == ["0.7", "0.1"]            # max AOPC (LRP), min time (LRP)
    assert "0.5 ± 0.01" in text and "–" in text


def test_gallery_needs_one_kind_per_column() -> None:
    bad = Gallery(name="g", columns=["a", "b"], kinds=["input"], rows=[])
    with pytest.raises(ValueError, match="1 kinds for 2 columns"):
        render(Report(title="t", sections=[Section("s", [bad])]))


def test_plots_are_png() -> None:
    png = plots.bars({"IG": 1.0, "LRP": 0.1}, log=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    png = plots.scatter_identity([1.0, 2.0], [1.1, 2.0])
    assert png[:4] == b"\x89PNG"
