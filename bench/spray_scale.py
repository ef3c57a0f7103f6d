"""SpRAy at scale: 50,000 synthetic heatmaps of one class, through a store directory.

The heatmaps (1 x 28 x 28, float32, like mnist-5k's) hold relevance in one of four places
plus noise; they are written to ``DIR/ig.h5`` in chunks, then ``lumos.analysis.analyse`` runs
the whole analysis (features, kNN graph, eigsh, eigengap, k-means for several k, t-SNE,
prototypes, border shares) and writes ``DIR/analysis-ig.h5``. Printed: wall time per stage,
peak resident memory of the process (ru_maxrss), the eigengap's k and its adjusted Rand index
against the planted groups. ``--check-knn N`` also compares the inverted-file kNN with the
exact one on N heatmaps: recall of the true neighbours, k-th distance ratio, time, and the ARI
of SpRAy with each.

    python bench/spray_scale.py [--n 50000] [--check-knn 20000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from sklearn.metrics import adjusted_rand_score

from lumos.analysis import SpraySettings, analyse, heatmap_features, spray
from lumos.analysis.graph import knn

SPOTS = ((2, 2), (2, 18), (18, 2), (12, 12))


def synthetic(n: int, seed: int = 0, noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 1, 28, 28)`` heatmaps with a blob in one of four places, and the place of each."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, len(SPOTS), n)
    maps = rng.normal(0.0, noise, (n, 1, 28, 28)).astype(np.float32)
    for g, (r, c) in enumerate(SPOTS):
        maps[group == g, :, r:r + 8, c:c + 8] += 1.0
    return maps, group


def write_store(directory: Path, n: int, chunk: int = 5000) -> np.ndarray:
    """``DIR/ig.h5`` with ``n`` heatmaps of class 0, written in chunks; returns the groups."""
    groups = []
    with h5py.File(directory / "ig.h5", "w") as f:
        ds = f.create_dataset("attribution", (n, 1, 28, 28), dtype="f4", chunks=(256, 1, 28, 28))
        for start in range(0, n, chunk):
            maps, g = synthetic(min(chunk, n - start), seed=start)
            ds[start:start + len(maps)] = maps
            groups.append(g)
        f["label"] = np.zeros(n, dtype=np.int64)
        f["index"] = np.arange(n)
        f["prediction"] = np.zeros((n, 10), dtype=np.float32)
    return np.concatenate(groups)


def check_knn(n: int) -> None:
    maps, group = synthetic(n, seed=1)
    x = heatmap_features(maps)
    begin = time.perf_counter()
    exact_i, exact_d = knn(x, 10)
    t_exact = time.perf_counter() - begin
    begin = time.perf_counter()
    approx_i, approx_d = knn(x, 10, approximate=True)
    t_approx = time.perf_counter() - begin
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_i, approx_i, strict=True)])
    ratio = float(np.median(approx_d[:, -1] / exact_d[:, -1]))
    print(f"kNN on {n} heatmaps: exact {t_exact:.1f} s, inverted-file {t_approx:.1f} s; "
          f"recall {recall:.3f}, median k-th distance ratio {ratio:.3f}")
    for flag in (False, True):
        r = spray(x, SpraySettings(approximate=flag, tsne_max=500))
        print(f"  SpRAy with {'inverted-file' if flag else 'exact'} kNN: k = {r.eigengap_k}, "
              f"ARI {adjusted_rand_score(group, r.chosen):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--check-knn", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.check_knn:
        check_knn(args.check_knn)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        begin = time.perf_counter()
        group = write_store(directory, args.n)
        written = time.perf_counter() - begin
        begin = time.perf_counter()
        _, results = analyse(directory, "ig", progress=True)
        took = time.perf_counter() - begin
    r = results[0].result
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KiB -> GiB
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
    print(f"{args.n} heatmaps of one class (store written in {written:.1f} s)")
    print(f"SpRAy: {took:.1f} s in all ({'inverted-file' if r.approximate else 'exact'} kNN; "
          f"{stages}); peak memory {peak:.2f} GiB")
    print(f"eigengap k = {r.eigengap_k}, ARI vs planted groups "
          f"{adjusted_rand_score(group, r.chosen):.3f}")


if __name__ == "__main__":
    main()
