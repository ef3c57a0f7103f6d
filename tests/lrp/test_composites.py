"""Which rule where: layer groups (isinstance), names, the first layer, defaults, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lumos
from lumos.lrp import composites, rules
from lumos.lrp.errors import LRPUnsupportedError


class MyConv(nn.Conv1d):
    """A subclass must match its parent's group."""


def model() -> nn.Module:
    return nn.Sequential(MyConv(2, 4, 3), nn.ReLU(), nn.Conv1d(4, 4, 3), nn.ReLU(),
                         nn.AvgPool1d(2), nn.Flatten(), nn.Linear(8, 3)).double().eval()


def rule_names(composite: composites.Composite) -> dict[str, str | None]:
    lrp = lumos.LRP(model(), composite)
    lrp.attribute(torch.randn(1, 2, 8, dtype=torch.float64), 0)
    return {k: None if v is None else v.name for k, v in lrp.rules.items()}


def test_named_composites_follow_zennit_mapping() -> None:
    assert rule_names(composites.EpsilonGammaBox(-1.0, 1.0)) == {
        "0": "ZBox", "1": "Pass", "2": "Gamma", "3": "Pass", "4": "Norm", "5": None,
        "6": "Epsilon"}
    assert rule_names(composites.EpsilonPlusFlat())["0"] == "Flat"
    assert rule_names(composites.EpsilonAlpha2Beta1Flat())["2"] == "AlphaBeta"
    assert rule_names(composites.EpsilonPlus())["0"] == "ZPlus"


def test_name_map_wins_and_layer_map_covers_the_rest() -> None:
    names = rule_names(composites.NameMap([("2", rules.AlphaBeta()), (("6",), rules.Epsilon(0.0))],
                                          layer_map=[(composites.CONVOLUTION, rules.ZPlus())]))
    assert names["0"] == "ZPlus" and names["2"] == "AlphaBeta" and names["6"] == "Epsilon"


def test_layer_map_by_group_and_first_layer() -> None:
    names = rule_names(composites.LayerMap([(composites.DENSE, rules.Epsilon())],
                                           first_map=[(composites.CONVOLUTION, rules.Flat())]))
    assert names["0"] == "Flat" and names["2"] is None and names["6"] == "Epsilon"


def test_rules_that_need_the_input_or_weights_are_refused() -> None:
    with pytest.raises(LRPUnsupportedError, match=r"'2'.*first_map"):
        rule_names(composites.NameMap([("2", rules.ZBox(0.0, 1.0))]))
    with pytest.raises(LRPUnsupportedError, match="needs a layer with weights"):
        rule_names(composites.NameMap([("4", rules.Gamma())]))


def test_bad_entries() -> None:
    with pytest.raises(TypeError, match="module type"):
        composites.LayerMap([("conv", rules.Epsilon())])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"rule from lumos\.lrp\.rules"):
        composites.LayerMap([(nn.Conv2d, "epsilon")])  # type: ignore[list-item]


@pytest.mark.slow
def test_epsilon_is_one_rule_everywhere_on_densenet() -> None:
    """composites.Epsilon(eps) also stabilises unfolded BatchNorms (Affine) and Norm steps with
    its eps: DenseNet-121 under Epsilon(1e-12) put 7.5e16 of relevance on a logit of -1.8 while
    Affine layers had Pass; now the sum stays at the logit's scale (biases absorb the rest)."""
    from lrp.fixtures_models import torchvision_model

    densenet = torchvision_model("densenet121")
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lrp = lumos.LRP(densenet, composites.Epsilon(1e-12))
    exp = lrp.explain(x, target=0)
    affine = {k: v.name for k, v in lrp.rules.items() if v is not None and ".norm" in k}
    assert affine and set(affine.values()) == {"Epsilon"}
    norms = [v for v in lrp.rules.values() if v is not None and v.kind == "norm"]
    assert norms and all(v.stabilizer == 1e-12 for v in norms)
    assert bool(torch.isfinite(exp.attribution).all())
    assert exp.attribution.sum().abs() <= 2 * exp.output.abs()


def test_a_blank_image_in_a_batch_costs_a_rerun_of_itself_only() -> None:
    """A blank input explains to zeros: z+ discards it (no error, the others as alone); LRP-0's
    epsilon does not (one clear error). The report that decides reruns the broken rows only."""
    from helpers import small_cnn

    torch.manual_seed(0)
    model = small_cnn()
    x = torch.rand(5, 1, 12, 12, dtype=torch.float64)
    x[2] = 0.0
    lrp = lumos.LRP(model, composites.EpsilonPlus())
    runs: list[int] = []
    run = lrp._run

    def counted(program: object, xx: torch.Tensor, *args: object) -> object:
        runs.append(len(xx))
        return run(program, xx, *args)  # type: ignore[arg-type]

    lrp._run = counted  # type: ignore[method-assign,assignment]
    got = lrp.attribute(x, target=[1, 2, 3, 4, 5])
    assert runs == [5, 1]
    assert float(got[2].abs().sum()) == 0.0
    alone = lumos.LRP(model, composites.EpsilonPlus()).attribute(x[[0, 1, 3, 4]],
                                                                 target=[1, 2, 4, 5])
    torch.testing.assert_close(got[[0, 1, 3, 4]], alone)
    with pytest.raises(LRPUnsupportedError, match="zero everywhere although"):
        lumos.LRP(model, composites.Epsilon()).attribute(x, target=1)
