"""One clear error per bad input, and the model untouched after every call (also failing ones)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import lumos
from helpers import small_cnn, untouched


@pytest.fixture
def model() -> nn.Module:
    net = small_cnn()
    net.train()  # a mode lumos must not change
    net[0].weight.grad = torch.ones_like(net[0].weight)
    net[1].register_forward_hook(lambda *args: None)
    return net


X = torch.rand(2, 1, 12, 12, dtype=torch.float64)
BAD_CALLS = [
    (IndexError, "target 10 is out of range for a model with 10 outputs",
     lambda ig: ig.attribute(X, target=10)),
    (ValueError, "baselines has shape", lambda ig: ig.attribute(X, baselines=torch.rand(3, 12))),
    (ValueError, "inputs contains NaN or infinite values",
     lambda ig: ig.attribute(torch.full_like(X, float("nan")), target=0)),
    (ValueError, "n_steps must be at least 1", lambda ig: ig.attribute(X, target=0, n_steps=0)),
    (ValueError, "unknown integration method 'simpson'",
     lambda ig: ig.attribute(X, target=0, method="simpson")),
    (ValueError, "max_steps must be at least 9", lambda ig: ig.explain(X, target=0, max_steps=8)),
    (ValueError, "internal_batch_size must be a positive int",
     lambda ig: ig.attribute(X, target=0, internal_batch_size=0)),
    (ValueError, "tolerance must be >= 0", lambda ig: ig.explain(X, target=0, tolerance=-1)),
]


@pytest.mark.parametrize(("error", "message", "call"), BAD_CALLS)
def test_bad_input_gets_one_clear_error_and_leaves_the_model(model, error, message, call):
    with untouched(model), pytest.raises(error, match=message):
        call(lumos.IntegratedGradients(model))


def test_training_mode_batchnorm_is_refused() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten()).double().train()
    with untouched(net), pytest.raises(ValueError, match="BatchNorm layer '1' is in training"):
        lumos.IntegratedGradients(net).attribute(X, target=0)
    with pytest.raises(TypeError, match=r"model must be an nn\.Module or a callable"):
        lumos.Gradient(3)  # type: ignore[arg-type]


def test_integer_target_needs_2d_output() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).double()
    with untouched(net), pytest.raises(ValueError, match="integer target needs a model output "
                                                          r"of shape \(N, classes\)"):
        lumos.IntegratedGradients(net).attribute(X, target=0)


@pytest.mark.parametrize("call", [
    lambda m: lumos.IntegratedGradients(m).attribute(X, target=1, n_steps=4,
                                                     return_convergence_delta=True),
    lambda m: lumos.IntegratedGradients(m).attribute(X, target=1, n_steps=4,
                                                     internal_batch_size="auto"),
    lambda m: lumos.IntegratedGradients(m).explain(X, target=[1, 2], baselines=["blur", 0.1]),
    lambda m: lumos.Gradient(m).explain(X, target=1),
    lambda m: lumos.InputXGradient(m).attribute(X, target=1),
    lambda m: lumos.SmoothGrad(m, n_samples=3).attribute(X, target=1),
])
def test_model_untouched_after_every_call(model, call) -> None:
    with untouched(model):
        call(model)


def test_works_under_no_grad_and_with_frozen_parameters(model) -> None:
    for p in model.parameters():
        p.requires_grad_(False)
    with untouched(model), torch.no_grad():
        attr = lumos.IntegratedGradients(model).attribute(X, target=0, n_steps=4)
    assert float(attr.abs().sum()) > 0
