"""Draw the picture at the top of the README and the docs' home page: ``docs/assets/ig-lrp.png``.

Two photos that ship with scikit-image under EfficientNet-Lite0 (ImageNet weights that ship in a
package), explained for the top class with adaptive IG (within 5%) and LRP ε-γ-box, side by
side. Run it after a change that alters these maps: ``python tools/docsite/hero.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "docs" / "assets" / "ig-lrp.png"


def main() -> int:
    """Write the picture; print its path."""
    import torch

    import lumos
    from lumos.data import photos
    from lumos.data.transforms import eval_transform
    from lumos.lrp import composites
    from lumos.models.zoo import pretrained
    from lumos.viz import grid, heatmap, save_png, to_image

    net = pretrained("efficientnet-lite0")
    transform = eval_transform(net.input_size, mean=net.mean, std=net.std)
    x = torch.stack([transform(p) for p in photos(["chelsea", "coffee"]).values()])
    with torch.no_grad():
        target = net.model(x).argmax(1)
    mean = torch.tensor(net.mean).view(1, 3, 1, 1)
    std = torch.tensor(net.std).view(1, 3, 1, 1)
    ig = lumos.IntegratedGradients(net.model).explain(x, target=target, tolerance=0.05,
                                                      max_steps=128)
    box = composites.EpsilonGammaBox(low=(0 - mean) / std, high=(1 - mean) / std)
    lrp = lumos.LRP(net.model, composite=box).explain(x, target=target)
    rows = [[to_image(x[i], mean=net.mean, std=net.std), heatmap(ig, index=i),
             heatmap(lrp, index=i)] for i in range(len(x))]
    labels = [net.classes[int(t)] for t in target]
    picture = grid(rows, row_labels=labels, col_labels=["photo", "Integrated Gradients",
                                                        "LRP (EpsilonGammaBox)"], cell=200)
    print(save_png(picture, OUT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
