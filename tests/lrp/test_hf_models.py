"""LRP on every image classifier of Hugging Face ``transformers``, as given (no wrapper).

Each class of ``AutoModelForImageClassification``'s mapping that builds offline and classifies
images (44 of 50, :mod:`lrp.hf_models`) is explained from ``pixel_values`` to its ``logits``:
CPLRP conserves relevance in float64 with biases zeroed (:mod:`lrp.conservation`, which also
says how degenerate random inits are repaired first), and EpsilonPlus gives a finite heatmap that
is not all zero in float32 on the model with its biases (BatchNorm statistics from random inputs:
several Hugging Face inits shrink the logits to ~1e-34 or to exactly zero). The classes that
take no image batch get one clear error; the user's model is untouched throughout.
"""

from __future__ import annotations

import pytest
import torch

import lumos
from helpers import untouched
from lrp import hf_models
from lrp.conservation import assert_conserves, assert_explains, calibrate
from lumos.lrp.errors import LRPUnsupportedError

pytest.importorskip("transformers")

CLASSES = hf_models.classes()
IMAGE_CLASSIFIERS = [(k, n) for k, n in CLASSES
                     if n not in hf_models.NOT_BUILT and n not in hf_models.NOT_IMAGES]


def test_every_class_of_the_mapping_is_accounted_for() -> None:
    names = {n for _, n in CLASSES}
    assert len(CLASSES) == 50 and set(hf_models.NOT_BUILT) <= names
    assert set(hf_models.NOT_IMAGES) <= names
    assert len(IMAGE_CLASSIFIERS) == 44


def _x(side: int, dtype: torch.dtype = torch.float32, batch: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(batch, 3, side, side, generator=gen, dtype=dtype)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "name"), IMAGE_CLASSIFIERS, ids=[n for _, n in IMAGE_CLASSIFIERS])
def test_explained_as_given(kind: str, name: str) -> None:
    model, side = hf_models.build(kind, name)
    calibrate(model, side, dtype=torch.float32, zero_biases=False)
    with untouched(model):
        assert_explains(model, _x(side), name)
    assert_conserves(calibrate(model, side), _x(side, torch.float64), name)


def test_a_degenerate_init_raises_instead_of_an_empty_heatmap() -> None:
    """Hugging Face's MobileNet v1 at its own init: weights N(0, 0.02) and BatchNorm at unit
    statistics shrink the logits to ~1e-34 in float32; the epsilon rule absorbs all of it, and
    ``LRP`` says so rather than return an all-zero heatmap."""
    model, side = hf_models.build("mobilenet_v1", "MobileNetV1ForImageClassification")
    with untouched(model), pytest.raises(LRPUnsupportedError,
                                         match=r"zero everywhere although the explained score"):
        lumos.LRP(model, lumos.lrp.composites.EpsilonPlus()).attribute(_x(side), target=0)


@pytest.mark.parametrize("name", hf_models.NOT_IMAGES)
def test_classes_without_image_input_get_one_clear_error(name: str) -> None:
    kind = next(k for k, n in CLASSES if n == name)
    model, side = hf_models.build(kind, name)
    with untouched(model), pytest.raises(LRPUnsupportedError,
                                         match=r"fails on the example input of shape"):
        lumos.LRP(model).attribute(_x(side), target=0)


def test_logits_and_target_as_for_any_model() -> None:
    """The heatmap explains ``logits[:, target]``: LRP-0 on a ReLU network is gradient x input
    of that logit (a Hugging Face ResNet, BatchNorm folded, biases zeroed)."""
    model = calibrate(hf_models.build("resnet", "ResNetForImageClassification")[0], 32)
    x = _x(32, torch.float64)
    target = torch.tensor([3, 0])
    got = lumos.LRP(model, lumos.lrp.composites.Epsilon(0.0)).attribute(x, target=target)
    leaf = x.clone().requires_grad_(True)
    logits = model(pixel_values=leaf).logits
    (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), leaf)
    torch.testing.assert_close(got, leaf.detach() * grad, rtol=1e-9, atol=1e-12)
