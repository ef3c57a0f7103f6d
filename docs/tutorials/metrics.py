# %% [markdown]
# # Measuring explanations
#
# Which explanation is more faithful to the model? Pixel flipping removes the pixels an
# explanation ranks highest first and watches the class score fall; the faster it falls, the
# better the ranking. This tutorial compares IG, LRP, the gradient and a random attribution on
# 32 held-out digits, then runs the model-randomisation sanity check.

# %%
import matplotlib.pyplot as plt
import torch

import lumos
from lumos import metrics
from lumos.data import mnist5k
from lumos.lrp import composites
from lumos.models.zoo import mnist5k_cnn

model = mnist5k_cnn()
x, y = mnist5k("test")
x, y = x[:32], y[:32]

explanations = {
    "IG": lumos.IntegratedGradients(model).attribute(x, target=y, n_steps=32),
    "LRP ε⁺": lumos.LRP(model, composite=composites.EpsilonPlus()).attribute(x, target=y),
    "Gradient × Input": lumos.InputXGradient(model).attribute(x, target=y),
    "random": metrics.random_attribution(seed=0)(x, y),
}

# %% [markdown]
# ## Pixel flipping
#
# 28 steps of 28 pixels each, most relevant first (MoRF), removed pixels set to 0 (black, the
# digits' background); the score is the class logit.

# %%
curves = {name: metrics.pixel_flipping(model, x, a, y, steps=28, fill=0.0)
          for name, a in explanations.items()}
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, c in curves.items():
    ax.plot(c.mean(0).numpy(), label=f"{name} (AOPC {metrics.aopc(c).mean():.2f})")
ax.set_xlabel("step (28 pixels each)")
ax.set_ylabel("class logit")
ax.legend()
plt.show()

# %% [markdown]
# ## Methods × metrics
#
# `metrics.evaluate` runs every method and metric in batches and returns a table (also as
# JSON or CSV): the area over the MoRF curve (higher is better), over the LeRF curve (least
# relevant first: lower is better), and the Gini sparseness of the maps.

# %%
methods = {"ig": lumos.IntegratedGradients(model),
           "lrp:epsilon-plus": lumos.LRP(model, composite=composites.EpsilonPlus()),
           "gradient": lumos.Gradient(model), "random": metrics.random_attribution(seed=0)}
result = metrics.evaluate(model, (x, y), methods, ["aopc_morf", "aopc_lerf", "sparseness"],
                          progress=False)
print(result.table())

# %% [markdown]
# ## Sanity: does the explanation depend on the weights?
#
# Model randomisation (Adebayo et al. 2018) randomises the layers from the top, one after the
# other, on a copy of the model, and compares the explanations with the original's. An
# explanation that stays the same is explaining the input, not the model.

# %%
check = metrics.model_randomization(
    model, x[:8], lambda m, xx, t: lumos.LRP(m, composite=composites.EpsilonPlus()).attribute(xx, target=t), y[:8])
for layer, rho in zip(check.layers, check.spearman.mean(1).tolist()):
    print(f"randomised down to {layer:12s} mean Spearman with the original {rho:+.2f}")
print("flagged (the explanation ignores the model):", check.flagged)
