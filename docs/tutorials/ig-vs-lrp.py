# %% [markdown]
# # IG and LRP on digits and photos
#
# Integrated Gradients and LRP answer the same question, "which pixels made the model say
# this?", in different ways: IG integrates the gradient from a baseline to the input, LRP hands
# the score back layer by layer. This tutorial runs both on the embedded MNIST digits under the
# study's CNN and on two photos under EfficientNet-Lite0 with its ImageNet weights, and looks at
# how much they agree. Everything here runs offline.

# %%
import torch

import lumos
from lumos.data import mnist5k, photos
from lumos.data.transforms import eval_transform
from lumos.lrp import composites
from lumos.metrics import spearman
from lumos.models.zoo import mnist5k_cnn, pretrained
from lumos.viz import grid, heatmap, to_image

# %% [markdown]
# ## Digits
#
# The study's CNN, trained on the 4,000 embedded training digits on first use and cached, and
# six held-out digits. IG runs adaptively: each digit gets as many gradient evaluations as its
# map needs to be within 2% (estimated) and its completeness gap within 2%.

# %%
model = mnist5k_cnn()
x, y = mnist5k("test")
x, y = x[:6], y[:6]

ig = lumos.IntegratedGradients(model).explain(x, target=y, tolerance=0.02)
lrp = lumos.LRP(model, composite=composites.EpsilonGammaBox(low=0.0, high=1.0)).explain(x, target=y)
print("IG gradient evaluations per digit:", ig.n_steps.tolist())
print("IG estimated map error:", [f"{e:.3f}" for e in ig.error.tolist()])
print("LRP relevance at the input / output:",
      [f"{r:.2f}" for r in (lrp.attribution.sum((1, 2, 3)) / lrp.output).tolist()])

# %% [markdown]
# Red is evidence for the digit, blue against. IG spreads evidence over the strokes and the
# background the strokes leave empty; LRP with ε-γ-box concentrates on the strokes.

# %%
grid([[to_image(x[i]) for i in range(6)],
      [heatmap(ig, index=i) for i in range(6)],
      [heatmap(lrp, index=i) for i in range(6)]],
     row_labels=["digit", "IG", "LRP"], col_labels=[str(int(t)) for t in y], cell=80)

# %% [markdown]
# How similar are they? The Spearman rank correlation of the two maps, digit by digit (1: the
# same order of pixels):

# %%
print([f"{r:+.2f}" for r in spearman(ig.attribution, lrp.attribution).tolist()])

# %% [markdown]
# ## Photos
#
# EfficientNet-Lite0 with its ImageNet weights, which ship in a package, and two photos that
# ship with scikit-image. For normalised inputs, z^B at the first layer needs the bounds of the
# normalised pixels, per channel. IG runs to a 10% tolerance here to keep the tutorial quick;
# a photo needs about 230 gradient evaluations for 1%.

# %%
net = pretrained("efficientnet-lite0")
transform = eval_transform(net.input_size, mean=net.mean, std=net.std)
pictures = photos(["chelsea", "coffee"])
xp = torch.stack([transform(p) for p in pictures.values()])
with torch.no_grad():
    top = net.model(xp).softmax(1).max(1)
print([f"{net.classes[int(c)]} ({p:.2f})" for p, c in zip(top.values, top.indices)])

mean = torch.tensor(net.mean).view(1, 3, 1, 1)
std = torch.tensor(net.std).view(1, 3, 1, 1)
box = composites.EpsilonGammaBox(low=(0 - mean) / std, high=(1 - mean) / std)
ig_p = lumos.IntegratedGradients(net.model).explain(xp, target=top.indices, tolerance=0.1,
                                                     max_steps=64)
lrp_p = lumos.LRP(net.model, composite=box).explain(xp, target=top.indices)
print("IG gradient evaluations per photo:", ig_p.n_steps.tolist())

# %%
grid([[to_image(xp[i], mean=net.mean, std=net.std) for i in range(2)],
      [heatmap(ig_p, index=i) for i in range(2)],
      [heatmap(lrp_p, index=i) for i in range(2)]],
     row_labels=["photo", "IG", "LRP"], cell=200)

# %% [markdown]
# Both methods find the cat's face and the cup; IG's map is grainier (the gradient of a deep
# ReLU6 network jumps along the path), LRP's smoother. Next: [LRP on a ViT and a
# ConvNeXt](transformers.md), or [measuring which explanation is more
# faithful](metrics.md).
