"""Spectral Relevance Analysis (SpRAy, Lapuschkin et al. 2019) of one class's heatmaps.

features (:mod:`lumos.analysis.features`) -> kNN affinity -> normalised Laplacian -> smallest
eigenpairs -> eigengap -> k-means on the spectral embedding for several k; t-SNE (and UMAP
when it is installed) of the spectral embedding, for drawing only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lumos.analysis import graph

APPROXIMATE_ABOVE = 20_000
"""Classes with more samples use the inverted-file kNN (see :func:`lumos.analysis.graph.knn`)."""


@dataclass
class SpraySettings:
    """What decides a SpRAy result; written into the analysis file.

    Attributes
    ----------
    size: pooled heatmap size ``(h, w)``.
    neighbors: k of the kNN graph.
    n_eigen: eigenpairs computed (the spectral embedding's width).
    cluster_counts: k-means cluster counts always computed (the eigengap's is added).
    max_clusters: largest count the eigengap may choose.
    approximate: ``None``: inverted-file kNN above :data:`APPROXIMATE_ABOVE` samples.
    tsne_max: t-SNE runs on at most this many samples; the others are placed at the
        inverse-distance mean of their 5 nearest of those in the spectral embedding.
    seed: random seed of k-means, t-SNE and the eigensolver's start vector.
    """

    size: tuple[int, int] = (16, 16)
    neighbors: int = 10
    n_eigen: int = 32
    cluster_counts: Sequence[int] = (2, 3, 4, 5, 6, 8)
    max_clusters: int = 10
    approximate: bool | None = None
    tsne_max: int = 5000
    umap: bool = True
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values."""
        return {"size": list(self.size), "neighbors": self.neighbors, "n_eigen": self.n_eigen,
                "cluster_counts": list(self.cluster_counts),
                "max_clusters": self.max_clusters, "approximate": self.approximate,
                "tsne_max": self.tsne_max, "umap": self.umap, "seed": self.seed}


@dataclass
class SprayResult:
    """SpRAy of one class: eigenvalues, embeddings and clusterings, rows as in the input.

    ``drawn_from``: t-SNE (and UMAP) embed the first ``drawn_from`` eigenvectors.
    """

    eigenvalues: np.ndarray
    spectral: np.ndarray
    tsne: np.ndarray
    clusterings: dict[int, np.ndarray]
    eigengap_k: int
    approximate: bool
    drawn_from: int = 2
    umap: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def chosen(self) -> np.ndarray:
        """The cluster labels of the k-means clustering the eigengap chose."""
        return self.clusterings[self.eigengap_k]


def spray(features: np.ndarray, settings: SpraySettings | None = None,
          tick: Callable[[str, int], None] | None = None) -> SprayResult:
    """Run SpRAy on ``(N, D)`` features (one row per heatmap of a class).

    ``tick(stage, n)`` reports progress: ``("knn", rows done)`` and ``(stage, 1)`` per later
    stage (spectrum, kmeans-k, tsne, umap).
    """
    import time

    s = settings or SpraySettings()
    n = len(features)
    if n < 4:
        raise ValueError(f"SpRAy needs at least 4 heatmaps of a class, got {n}")
    note = tick or (lambda stage, k: None)
    clock: dict[str, float] = {}
    begin = time.perf_counter()
    approx = s.approximate if s.approximate is not None else n > APPROXIMATE_ABOVE
    k = min(s.neighbors, n - 1)
    index, dist = graph.knn(features, k, approximate=approx, seed=s.seed,
                            tick=lambda m: note("knn", m))
    w = graph.affinity(index, dist)
    clock["knn"] = time.perf_counter() - begin
    eigenvalues, vectors = graph.spectrum(w, min(s.n_eigen, n - 1), seed=s.seed)
    note("spectrum", 1)
    clock["spectrum"] = time.perf_counter() - begin - sum(clock.values())
    chosen = graph.eigengap(eigenvalues, min(s.max_clusters, n - 1))
    counts = sorted({c for c in (*s.cluster_counts, chosen) if 2 <= c < n})
    clusterings = {c: kmeans(vectors, c, s.seed) for c in counts}
    note("kmeans", 1)
    clock["kmeans"] = time.perf_counter() - begin - sum(clock.values())
    drawn = _rows_normalized(vectors[:, :max(2, min(s.max_clusters + 1, vectors.shape[1]))])
    tsne = _landmarked(drawn, s.tsne_max, s.seed, _tsne)
    note("tsne", 1)
    clock["tsne"] = time.perf_counter() - begin - sum(clock.values())
    umap = _landmarked(drawn, s.tsne_max, s.seed, _umap) if s.umap and _has_umap() else None
    return SprayResult(eigenvalues=eigenvalues, spectral=vectors.astype(np.float32),
                       tsne=tsne.astype(np.float32), clusterings=clusterings,
                       eigengap_k=chosen, approximate=approx, drawn_from=drawn.shape[1],
                       umap=umap, timings=clock)


def kmeans(vectors: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means labels of the first ``k`` eigenvectors, rows scaled to unit length (Ng, Jordan
    and Weiss 2001), clusters numbered by size (0 the largest)."""
    from sklearn.cluster import KMeans

    u = _rows_normalized(vectors[:, :k])
    labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(u)
    sizes = np.bincount(labels, minlength=k)
    rank = np.empty(k, dtype=np.int64)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(k)
    return rank[labels].astype(np.int32)


def _rows_normalized(u: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(u, axis=1, keepdims=True)
    return u / np.where(norm > 0, norm, 1.0)


def _landmarked(x: np.ndarray, limit: int, seed: int,
                embed: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """``embed`` of at most ``limit`` rows; the rest placed among their nearest landmarks."""
    n = len(x)
    if n <= limit:
        return embed(x, seed)
    landmarks = np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
    out = np.empty((n, 2), dtype=np.float64)
    out[landmarks] = embed(x[landmarks], seed)
    rest = np.setdiff1d(np.arange(n), landmarks)
    xs = np.ascontiguousarray(np.concatenate([x[landmarks], x[rest]]), dtype=np.float32)
    idx, dist = graph.exact_search(xs, np.arange(limit, n), np.arange(limit), 5, 512, None)
    weight = 1.0 / (dist.astype(np.float64) + 1e-6)
    out[rest] = (weight[..., None] * out[landmarks][idx]).sum(1) / weight.sum(1, keepdims=True)
    return out


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    # one OpenMP thread: on a busy machine scikit-learn's spinning threads ran 7x slower
    with threadpool_limits(limits=1, user_api="openmp"):
        return np.asarray(TSNE(n_components=2, perplexity=perplexity, init="pca",
                               max_iter=500, random_state=seed).fit_transform(x))


def _has_umap() -> bool:
    import importlib.util

    return importlib.util.find_spec("umap") is not None


def _umap(x: np.ndarray, seed: int) -> np.ndarray:
    import umap

    # one job: a seeded UMAP runs serially anyway (and warns when asked for more)
    return np.asarray(umap.UMAP(n_components=2, random_state=seed, n_jobs=1).fit_transform(x))
