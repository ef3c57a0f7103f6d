"""evaluate(): the methods x metrics table, its files and `lumos evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from helpers import small_cnn, untouched
from lumos.explanation import Explanation
from lumos.metrics import evaluate, inverted, random_attribution
from lumos.metrics.table import EvaluationResult, mean_stderr


def gradient_x_input(model: nn.Module):  # type: ignore[no-untyped-def]
    def explain(x: Tensor, t: Tensor) -> Explanation:
        leaf = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model(leaf).gather(1, t[:, None]).sum(), leaf)
        return Explanation(attribution=(grad * x).detach(), output=torch.zeros(len(x)),
                           method="ixg")
    return explain


def test_every_metric_for_every_method(tmp_path: Path) -> None:
    model = small_cnn()
    x = torch.rand(10, 1, 12, 12, dtype=torch.float64)
    y = torch.randint(0, 10, (10,))
    methods = {"ixg": gradient_x_input(model), "random": random_attribution(1),
               "inverted ixg": inverted(gradient_x_input(model))}
    metrics = ["aopc_morf", "aopc_lerf", "insertion", "deletion", "infidelity",
               "max_sensitivity", "sparseness", "completeness_error", "runtime"]
    with untouched(model):
        result = evaluate(model, (x, y), methods, metrics, batch_size=4, progress=False)
    assert result.methods == list(methods) and result.metrics == metrics
    for method in methods:
        for metric in metrics:
            assert len(result.values[method][metric]) == 10
    assert result.mean("ixg", "aopc_morf") > result.mean("inverted ixg", "aopc_morf")
    table = result.table()
    assert table.splitlines()[0].startswith("method") and "aopc_morf (↑)" in table
    data = json.loads(result.to_json(tmp_path / "r.json"))
    assert data["summary"]["ixg"]["sparseness"]["n"] == 10
    assert json.loads((tmp_path / "r.json").read_text()) == data
    csv_text = result.to_csv(tmp_path / "r.csv")
    assert csv_text.splitlines()[0] == "method,metric,mean,stderr,n,better"
    assert len(csv_text.splitlines()) == 1 + len(methods) * len(metrics)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp files left


def test_predicted_target_and_loader_batches() -> None:
    model = small_cnn()
    x = torch.rand(6, 1, 12, 12, dtype=torch.float64)
    batches = [(x[:3], torch.zeros(3)), (x[3:], torch.zeros(3))]
    result = evaluate(model, batches, {"random": random_attribution()}, ["sparseness"],
                      target="predicted", progress=False)
    assert result.info == {"samples": 6, "target": "predicted", "seed": 0}
    with pytest.raises(ValueError, match="unknown metric 'aopc'"):
        evaluate(model, (x, torch.zeros(6)), {"r": random_attribution()}, ["aopc"])
    with pytest.raises(ValueError, match="attribution has shape"):
        evaluate(model, (x, torch.zeros(6).long()), {"bad": lambda x, t: x[:, :, :4]},
                 ["sparseness"], progress=False)


def test_mean_stderr_and_nan_in_json() -> None:
    mean, se = mean_stderr([1.0, 2.0, 3.0, float("nan")])
    assert mean == 2.0 and abs(se - (1.0 / 3**0.5)) < 1e-12
    result = EvaluationResult(["m"], ["x"], {"m": {"x": [float("nan")]}})
    assert json.loads(result.to_json())["summary"]["m"]["x"]["mean"] is None


def test_cli_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                      trained_mnist_cnn: nn.Module) -> None:
    from lumos.cli import main

    code = main(["evaluate", "--n", "8", "--method", "input-x-gradient", "--method", "random",
                 "--metrics", "aopc_morf,sparseness", "--quiet", "--json",
                 str(tmp_path / "m.json"), "--csv", str(tmp_path / "m.csv")])
    out = capsys.readouterr().out
    assert code == 0 and "input-x-gradient" in out and "aopc_morf" in out
    assert json.loads((tmp_path / "m.json").read_text())["info"]["samples"] == 8
    assert (tmp_path / "m.csv").read_text().startswith("method,metric")
    assert main(["evaluate", "--metrics", "nope", "--quiet"]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err
    assert main(["evaluate", "--method", "lrp:nope", "--n", "2", "--quiet"]) == 2


def test_table_says_how_many_samples_a_mean_has() -> None:
    from lumos.metrics.table import EvaluationResult

    nan = float("nan")
    result = EvaluationResult(["a", "b", "c"], ["consistency"],
                              {"a": {"consistency": [1.0, 0.0, 1.0]},
                               "b": {"consistency": [1.0, nan, nan]},
                               "c": {"consistency": [nan, nan, nan]}},
                              better={"consistency": "higher"})
    rows = {line.split()[0]: line for line in result.table().splitlines()[2:]}
    assert "(n=" not in rows["a"] and "0.667 ± 0.33" in rows["a"]
    assert "1 ± 0 (n=1)" in rows["b"]
    assert rows["c"].split()[1:] == ["n/a"]
