# %% [markdown]
# # LRP on a ViT and a ConvNeXt
#
# The same `lumos.LRP` explains transformers. This tutorial builds a small Vision Transformer
# and a small ConvNeXt from torchvision with random weights (no download; the rules do not care
# whether the weights are trained; only the ViT's head, which torchvision starts at zero, gets
# random weights), explains them with several composites, checks conservation,
# and compares the composites' maps.

# %%
import torch
from torchvision.models import VisionTransformer
from torchvision.models.convnext import CNBlockConfig, ConvNeXt

import lumos
from lumos.lrp import composites
from lumos.metrics import spearman
from lumos.viz import grid, heatmap

torch.manual_seed(0)
vit = VisionTransformer(image_size=32, patch_size=4, num_layers=2, num_heads=4, hidden_dim=64,
                        mlp_dim=128, num_classes=10).eval()
torch.nn.init.normal_(vit.heads.head.weight, std=0.1)  # torchvision starts the head at zero
convnext = ConvNeXt([CNBlockConfig(32, 64, 2), CNBlockConfig(64, None, 2)], num_classes=10).eval()
x = torch.rand(4, 3, 32, 32)

# %% [markdown]
# ## Composites compared
#
# `AttnLRP` and `CPLRP` are the transformer composites; the CNN composites (`EpsilonPlus`,
# `EpsilonGammaBox`) also work on these models, with the transformer rules on norms, products and
# softmax.

# %%
choices = {"AttnLRP": composites.AttnLRP(), "CPLRP": composites.CPLRP(),
           "EpsilonPlus": composites.EpsilonPlus(),
           "EpsilonGammaBox": composites.EpsilonGammaBox(low=0.0, high=1.0)}
maps = {}
for model_name, model in (("ViT", vit), ("ConvNeXt", convnext)):
    for name, composite in choices.items():
        exp = lumos.LRP(model, composite=composite).explain(x, target=0)
        maps[model_name, name] = exp
        print(f"{model_name:8s} {name:15s} input/output {float(exp.attribution[0].sum() / exp.output[0]):+.3f}")

# %%
rows = [[heatmap(maps[m, n], index=0) for n in choices] for m in ("ViT", "ConvNeXt")]
grid(rows, row_labels=["ViT", "ConvNeXt"], col_labels=list(choices), cell=120)

# %% [markdown]
# The rank correlation between composites on the ViT (first input):

# %%
names = list(choices)
for a in names:
    print(f"{a:15s}", " ".join(f"{float(spearman(maps['ViT', a].attribution[:1], maps['ViT', b].attribution[:1])[0]):+.2f}" for b in names))

# %% [markdown]
# ## Conservation
#
# With biases zeroed and ε → 0, everything that leaves the output arrives at the input or in a
# sink (the class token and position embedding of the ViT). `explain(...).layers` shows the sum
# at every layer; in float64 the check is exact to rounding:

# %%
vit64 = VisionTransformer(image_size=32, patch_size=4, num_layers=2, num_heads=4, hidden_dim=64,
                          mlp_dim=128, num_classes=10).double().eval()
with torch.no_grad():
    torch.nn.init.normal_(vit64.heads.head.weight, std=0.1)
    for name, p in vit64.named_parameters():
        if name.endswith("bias"):
            p.zero_()
exp = lumos.LRP(vit64, composite=composites.CPLRP(epsilon=0.0)).explain(x[:1].double(), target=0)
sinks = {k: float(v[0]) for k, v in exp.layers.items() if k.endswith("(sink)")}
print(f"output {float(exp.output[0]):+.6f}")
print(f"input  {float(exp.layers['input'][0]):+.6f}")
for k, v in sinks.items():
    print(f"{k:30s} {v:+.6f}")
print(f"input + sinks - output: {float(exp.layers['input'][0]) + sum(sinks.values()) - float(exp.output[0]):.1e}")

# %% [markdown]
# Next: [explain a whole dataset and cluster its heatmaps](spray.md).
