"""The metrics on the trained mnist-5k CNN: faithfulness ordering and the randomization check."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import lumos
from helpers import untouched
from lumos.data.samples import mnist5k
from lumos.lrp import composites
from lumos.metrics import AOPC, evaluate, inverted, model_randomization, random_attribution


def held_out(n: int) -> tuple[Tensor, Tensor]:
    x, y = mnist5k("test")
    return x[:n], y[:n]


@pytest.mark.slow
def test_ig_and_lrp_beat_random_and_inverted_in_morf_aopc(trained_mnist_cnn: nn.Module) -> None:
    model = trained_mnist_cnn
    ig = lumos.IntegratedGradients(model)
    lrp = lumos.LRP(model, composite=composites.EpsilonPlus())
    ig_fn = lambda x, t: ig.attribute(x, target=t, n_steps=16)
    methods = {"IG": ig_fn, "LRP EpsilonPlus": lrp, "random": random_attribution(0),
               "inverted IG": inverted(ig_fn), "inverted LRP": inverted(lrp)}
    with untouched(model):
        result = evaluate(model, held_out(200), methods,
                          metrics=[AOPC("morf", steps=16)],
                          batch_size=100, progress=False)
    print("\n" + result.table())
    for good in ("IG", "LRP EpsilonPlus"):
        for bad in ("random", "inverted IG", "inverted LRP"):
            g, b = result.mean(good, "aopc_morf"), result.mean(bad, "aopc_morf")
            se = result.stderr(good, "aopc_morf") + result.stderr(bad, "aopc_morf")
            assert g > b + 5 * se and g > b + 0.25 * abs(b) + 1.0, (good, bad, g, b)


def sobel_magnitude(model: nn.Module, x: Tensor, target: object) -> Tensor:
    """An 'edge detector' explanation: it never looks at the model."""
    k = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]], dtype=x.dtype)
    gx = F.conv2d(x, k[None, None], padding=1)
    gy = F.conv2d(x, k.T[None, None], padding=1)
    return (gx.square() + gy.square()).sqrt()


def test_model_randomization_separates_model_explanations_from_an_edge_detector(
        trained_mnist_cnn: nn.Module) -> None:
    model = trained_mnist_cnn
    x, y = held_out(16)
    methods = {
        "gradient x input": lambda m, x, t: lumos.InputXGradient(m).attribute(x, target=t),
        "IG": lambda m, x, t: lumos.IntegratedGradients(m).attribute(x, target=t, n_steps=16),
    }
    with untouched(model):
        for name, explain in methods.items():
            result = model_randomization(model, x, explain, y, mode="cascading")
            assert result.layers[0] == "classifier.5" and result.layers[-1] == "features.0"
            assert not result.flagged, name
            similarity = result.spearman.abs().mean(1)
            assert similarity.max() < 0.3 and similarity[-1] < 0.15, (name, similarity)
            assert result.ssim is not None and result.ssim.mean(1).max() < 0.5
            print(name, result.to_dict())
        edges = model_randomization(model, x, sobel_magnitude, y, mode="cascading")
    assert edges.flagged
    torch.testing.assert_close(edges.spearman, torch.ones_like(edges.spearman))
    torch.testing.assert_close(edges.ssim, torch.ones_like(edges.spearman))


def test_independent_randomization_and_copy_only(trained_mnist_cnn: nn.Module) -> None:
    model = trained_mnist_cnn
    x, y = held_out(8)
    explain = lambda m, x, t: lumos.InputXGradient(m).attribute(x, target=t)
    with untouched(model):
        result = model_randomization(model, x, explain, y, mode="independent",
                                     layers=["features.0", "classifier.5"])
    assert result.layers == ["classifier.5", "features.0"]
    assert result.spearman.shape == (2, 8)
    assert not result.flagged
    with pytest.raises(ValueError, match="no module named 'fc9'"):
        model_randomization(model, x, explain, y, layers=["fc9"])
    with pytest.raises(ValueError, match="mode must be one of"):
        model_randomization(model, x, explain, y, mode="top")
