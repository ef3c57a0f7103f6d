"""All 5,000 mnist-5k digits through ``lumos explain-dataset`` with IG and LRP ε+, then checked.

Writes the store (split ``all``: 4,000 train + 1,000 test digits, mnist5k-cnn, predicted class),
then recomputes every map with the attributors' own API on the same batches and prints the
largest absolute difference: LRP ε+ against ``lumos.LRP(model, EpsilonPlus()).attribute`` and
IG against ``lumos.IntegratedGradients(model).explain`` with the store's options. Must show 1
of issue #12 (the suite runs the same check on 100 digits, tests/store/test_mnist5k.py).

    .venv/bin/python bench/store_mnist5k.py [--out lumos-out/mnist5k-store] [--limit 5000]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

import lumos
from lumos.lrp import composites
from lumos.models.zoo import mnist5k_cnn


def check(store: lumos.store.Store) -> dict[str, float]:
    """Largest |stored - API| per method, recomputed batch by batch as the store cut them."""
    model = mnist5k_cnn()
    m = store.manifest
    x = torch.from_numpy(store.arrays(None, ("data",))["data"])
    lrp, ig = store.arrays("lrp:epsilon-plus"), store.arrays("ig")
    t = torch.from_numpy(lrp["target"])
    lrp_api = lumos.LRP(model, composite=composites.EpsilonPlus())
    ig_api = lumos.IntegratedGradients(model)
    worst = {"lrp:epsilon-plus": 0.0, "ig": 0.0, "ig delta": 0.0, "ig error": 0.0}
    size, batch = m["shard_size"], m["batch_size"]
    for a in range(0, len(x), size):
        for b in range(a, min(a + size, len(x)), batch):
            rows = slice(b, min(b + batch, a + size, len(x)))
            want = lrp_api.attribute(x[rows], target=t[rows]).numpy()
            worst["lrp:epsilon-plus"] = max(worst["lrp:epsilon-plus"],
                                            float(np.abs(lrp["attribution"][rows] - want).max()))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exp = ig_api.explain(x[rows], target=t[rows], baselines=torch.zeros(1, 1, 1, 1),
                                     **m["methods"]["ig"]["options"])
            worst["ig"] = max(worst["ig"], float(np.abs(ig["attribution"][rows]
                                                        - exp.attribution.numpy()).max()))
            worst["ig delta"] = max(worst["ig delta"],
                                    float(np.abs(ig["delta"][rows] - exp.delta.numpy()).max()))
            if exp.error is not None:  # adaptive: the stored estimate of each map's error
                worst["ig error"] = max(worst["ig error"], float(np.abs(
                    ig["error"][rows] - exp.error.numpy()).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="lumos-out/mnist5k-store")
    parser.add_argument("--limit", type=int, default=5000)
    args = parser.parse_args()
    begin = time.perf_counter()
    store = lumos.explain_dataset("mnist5k-cnn", "mnist-5k", ["ig", "lrp:epsilon-plus"],
                                  args.out, split="all", limit=args.limit, shard_size=500,
                                  batch_size=50, overwrite=True)
    seconds = time.perf_counter() - begin
    m = store.manifest
    print(f"explain-dataset: {len(store)} digits in {seconds:.1f} s "
          f"({m['images_per_second']} images/s); per method: "
          + ", ".join(f"{k} {v['seconds']:.1f} s" for k, v in m["methods"].items()))
    ig = store.arrays("ig", ("delta", "output", "baseline_output", "converged", "n_steps"))
    gap = np.abs(ig["delta"]) / np.maximum(np.abs(ig["output"] - ig["baseline_output"]), 1e-12)
    print(f"IG: median relative completeness gap {np.median(gap):.4f}, converged "
          f"{ig['converged'].mean():.1%}, mean steps {ig['n_steps'].mean():.1f}")
    lrp = store.arrays("lrp:epsilon-plus", ("delta", "output"))
    print(f"LRP ε+: median |conservation gap| / f_t(x) "
          f"{np.median(np.abs(lrp['delta']) / np.abs(lrp['output'])):.4f}")
    for key, value in check(store).items():
        print(f"max |stored - API| {key}: {value:.2e}")


if __name__ == "__main__":
    main()
