# %% [markdown]
# # A dataset, SpRAy and the explorer
#
# One heatmap explains one decision; the strategies of a model show across a class. This
# tutorial explains 400 held-out digits into a store, clusters the heatmaps of each digit class
# with spectral relevance analysis (SpRAy), looks at the clusters, and writes the explorer's
# static page.

# %%
import numpy as np

import lumos
from lumos.analysis import SpraySettings, analyse
from lumos.explorer.static import write_page
from lumos.viz import grid, heatmap

# %% [markdown]
# ## Explain a dataset into a store
#
# `lumos.explain_dataset` (the command `lumos explain-dataset`) writes one HDF5 file per method
# in shards that survive being killed. Here: the study's CNN, the first 400 test digits, LRP ε⁺
# and the plain gradient.

# %%
store = lumos.explain_dataset("mnist5k-cnn", "mnist-5k", ["lrp:epsilon-plus", "gradient"],
                              "store", split="test", limit=400, shard_size=200, progress=False)
print(store)

# %% [markdown]
# ## SpRAy, class by class
#
# For each class: heatmaps pooled to 16×16, a 10-nearest-neighbour graph, the spectrum of its
# Laplacian, the eigengap's choice of clusters, k-means. `compare` correlates the gradient's
# heatmaps with LRP's per cluster.

# %%
path, classes = analyse("store", "lrp:epsilon-plus", labels=[2, 7],
                        settings=SpraySettings(seed=0), compare=["gradient"], progress=False)
for a in classes:
    print("\n".join(a.summary()))
print(path)

# %% [markdown]
# Each cluster's mean heatmap shows what its digits have in common, here the ways of writing a
# 2 and a 7:

# %%
rows = [[heatmap(p) for p in a.prototypes[a.result.eigengap_k]] for a in classes]
grid(rows, row_labels=[f"class {a.label}" for a in classes], cell=96)

# %% [markdown]
# The eigenvalues near zero and the gap after them are what the eigengap reads. lumos keeps the
# spectrum in CoRelAy's order, largest first, as ViRelAy expects; `smallest_first` turns it
# around:

# %%
for a in classes:
    print(a.label, np.round(a.result.smallest_first[:6], 3).tolist())

# %% [markdown]
# ## The explorer
#
# `lumos serve store` opens the explorer on a local server; the static page holds the same
# views in one self-contained file (every thumbnail embedded, no request leaves it):

# %%
page = write_page("store", "spray.html")
print(page, f"{page.stat().st_size / 1e6:.1f} MB")

# %% [markdown]
# Next: [measuring explanations](metrics.md).
