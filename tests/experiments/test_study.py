"""Explaining a batch with several methods, timing them, and storing the results."""

from __future__ import annotations

from pathlib import Path

import torch

from helpers import small_cnn
from lumos.experiments import sections, store
from lumos.experiments.methods import Domain, parse
from lumos.experiments.study import explain_all


def test_explain_all_times_each_method_where_it_ran_and_store_keeps_it(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = small_cnn().eval()
    x = torch.randn(5, 1, 12, 12, dtype=torch.float64)
    target = torch.zeros(5, dtype=torch.long)
    domain = Domain(torch.full((1, 1, 1, 1), -3.0, dtype=torch.float64),
                    torch.full((1, 1, 1, 1), 3.0, dtype=torch.float64))
    results = explain_all(model, x, target, [parse("gradient"), parse("lrp:epsilon-plus")],
                          domain, batch_size=2)
    for r in results.values():
        assert r.explanation is not None and r.explanation.attribution.shape == x.shape
        assert r.seconds > 0 and r.device == "cpu"
    caption = sections.runtime_figure(results, len(x), "test").caption
    assert f"the CPU with {torch.get_num_threads()} torch threads" in caption
    store.save(tmp_path, {"x": x}, results, {}, {"config_hash": "h"})
    loaded = store.load(tmp_path, "h")
    assert loaded is not None
    assert {k: r.device for k, r in loaded[1].items()} == {k: "cpu" for k in results}


def test_ig_map_error_is_kept_in_batches_the_store_and_the_report(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = small_cnn().eval()
    x = torch.rand(3, 1, 12, 12, dtype=torch.float64)
    target = torch.zeros(3, dtype=torch.long)
    domain = Domain(torch.zeros(1, 1, 1, 1, dtype=torch.float64),
                    torch.ones(1, 1, 1, 1, dtype=torch.float64))
    results = explain_all(model, x, target, [parse("ig")], domain, batch_size=2,
                          options={"ig": {"tolerance": 0.05}})
    exp = results["ig"].explanation
    assert exp is not None and exp.error is not None and exp.error.shape == (3,)
    assert bool((exp.error <= 0.05).all())
    caption = sections.axiom_figures(results, "test")[0].caption
    assert "estimated map error" in caption
    store.save(tmp_path, {"x": x}, results, {}, {"config_hash": "h"})
    loaded = store.load(tmp_path, "h")
    assert loaded is not None
    kept = loaded[1]["ig"].explanation
    assert kept is not None and kept.error is not None and torch.equal(kept.error, exp.error)
