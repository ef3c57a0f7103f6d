"""Spectral Relevance Analysis (SpRAy, Lapuschkin et al. 2019) of one class's heatmaps.

features (:mod:`lumos.analysis.features`) -> kNN affinity -> normalised Laplacian -> smallest
eigenpairs -> eigengap -> k-means on the spectral embedding for several k; t-SNE (and UMAP
when it is installed) of the spectral embedding, for drawing only.

The spectrum comes out in CoRelAy's order, which ViRelAy assumes: eigenvalues of the Laplacian
descending, the smallest (0) last, eigenvector ``j`` in column ``j``. :data:`CORELAY` holds
CoRelAy's settings where lumos's defaults differ (docs/guide/virelay.md says why they do).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lumos.analysis import graph
from lumos.analysis.features import NORMALIZATIONS

APPROXIMATE_ABOVE = 20_000
"""Classes with more samples use the inverted-file kNN (see :func:`lumos.analysis.graph.knn`)."""
KMEANS_ON = ("leading", "all")
"""What :func:`kmeans` clusters (see :class:`SpraySettings`)."""


@dataclass
class SpraySettings:
    """What decides a SpRAy result; written into the analysis file.

    Attributes
    ----------
    size: pooled heatmap size ``(h, w)``; ``None``: full resolution.
    normalize: each feature row scaled to unit L2 norm (``"l2"``) or divided by its sum
        (``"sum"``, CoRelAy's example).
    neighbors: k of the kNN graph.
    affinity: kNN edge weights, ``"self-tuning"`` Gaussian or CoRelAy's ``"binary"``.
    n_eigen: eigenpairs computed (the spectral embedding's width).
    select: ``"smallest"`` Laplacian eigenvalues, or the ``"magnitude"`` choice of CoRelAy.
    kmeans_on: ``"leading"``: k-means with k clusters on the k eigenvectors of the smallest
        eigenvalues, rows scaled to unit length (Ng, Jordan & Weiss); ``"all"``: on all
        ``n_eigen`` eigenvectors with rows scaled to unit length, as CoRelAy does (the stored
        spectral embedding is then that scaled one, as CoRelAy stores it).
    cluster_counts: k-means cluster counts always computed (the eigengap's is added).
    max_clusters: largest count the eigengap may choose.
    approximate: ``None``: inverted-file kNN above :data:`APPROXIMATE_ABOVE` samples.
    tsne_max: t-SNE runs on at most this many samples; the others are placed at the
        inverse-distance mean of their 5 nearest of those in the spectral embedding.
    seed: random seed of k-means, t-SNE and the eigensolver's start vector.
    """

    size: tuple[int, int] | None = (16, 16)
    normalize: str = "l2"
    neighbors: int = 10
    affinity: str = "self-tuning"
    n_eigen: int = 32
    select: str = "smallest"
    kmeans_on: str = "leading"
    cluster_counts: Sequence[int] = (2, 3, 4, 5, 6, 8)
    max_clusters: int = 10
    approximate: bool | None = None
    tsne_max: int = 5000
    umap: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name, allowed in (("normalize", NORMALIZATIONS), ("affinity", graph.AFFINITIES),
                              ("select", graph.SELECTIONS), ("kmeans_on", KMEANS_ON)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got "
                                 f"{getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values."""
        return {"size": None if self.size is None else list(self.size),
                "normalize": self.normalize, "neighbors": self.neighbors,
                "affinity": self.affinity, "n_eigen": self.n_eigen, "select": self.select,
                "kmeans_on": self.kmeans_on, "cluster_counts": list(self.cluster_counts),
                "max_clusters": self.max_clusters, "approximate": self.approximate,
                "tsne_max": self.tsne_max, "umap": self.umap, "seed": self.seed}


#: Where :class:`SpraySettings` can follow CoRelAy instead of lumos: its SpRAy example's
#: features (full-resolution maps divided by their sum), ``SparseKNN`` binary affinity,
#: ``EigenDecomposition`` (largest ``|1 - lambda|``, rows of the eigenvectors scaled to unit
#: length) and ``KMeans`` on all of them. ``SpraySettings(**CORELAY)`` applies them all.
CORELAY: dict[str, Any] = {"size": None, "normalize": "sum", "affinity": "binary",
                           "select": "magnitude", "kmeans_on": "all"}


@dataclass
class SprayResult:
    """SpRAy of one class: eigenvalues, embeddings and clusterings, rows as in the input.

    ``eigenvalues`` (E,) and the columns of ``spectral`` (N, E) are in CoRelAy's order:
    largest eigenvalue first, the smallest (0) last. ``drawn_from``: t-SNE (and UMAP) embed
    the eigenvectors of the ``drawn_from`` smallest eigenvalues.
    """

    eigenvalues: np.ndarray
    spectral: np.ndarray
    tsne: np.ndarray
    clusterings: dict[int, np.ndarray]
    eigengap_k: int
    approximate: bool
    drawn_from: int = 2
    umap: np.ndarray | None = None
    kmeans_on: str = "leading"
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def chosen(self) -> np.ndarray:
        """The cluster labels of the k-means clustering the eigengap chose."""
        return self.clusterings[self.eigengap_k]

    @property
    def smallest_first(self) -> np.ndarray:
        """The eigenvalues ascending (the reverse of :attr:`eigenvalues`)."""
        return self.eigenvalues[::-1]


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
                            tick=lambda m: note("knn", m), precise=s.affinity == "binary")
    w = graph.affinity(index, dist, s.affinity)
    clock["knn"] = time.perf_counter() - begin
    ascending, vectors = graph.spectrum(w, min(s.n_eigen, n - 1), seed=s.seed, select=s.select)
    if s.kmeans_on == "all":
        vectors = _rows_normalized(vectors)
    note("spectrum", 1)
    clock["spectrum"] = time.perf_counter() - begin - sum(clock.values())
    chosen = graph.eigengap(ascending, min(s.max_clusters, n - 1))
    result = SprayResult(eigenvalues=ascending[::-1].copy(),
                         spectral=np.ascontiguousarray(vectors[:, ::-1], dtype=np.float32),
                         tsne=np.zeros((n, 2), np.float32), clusterings={},
                         eigengap_k=chosen, approximate=approx, kmeans_on=s.kmeans_on)
    add_clusterings(result, (*s.cluster_counts, chosen), s, vectors)
    note("kmeans", 1)
    clock["kmeans"] = time.perf_counter() - begin - sum(clock.values())
    drawn = _rows_normalized(vectors[:, :max(2, min(s.max_clusters + 1, vectors.shape[1]))])
    result.drawn_from = drawn.shape[1]
    result.tsne = _landmarked(drawn, s.tsne_max, s.seed, _tsne).astype(np.float32)
    note("tsne", 1)
    clock["tsne"] = time.perf_counter() - begin - sum(clock.values())
    if s.umap and _has_umap():
        result.umap = _landmarked(drawn, s.tsne_max, s.seed, _umap)
    result.timings = clock
    return result


def add_clusterings(result: SprayResult, counts: Sequence[int], settings: SpraySettings,
                    ascending: np.ndarray | None = None) -> None:
    """Add the k-means clusterings of ``counts`` that ``result`` lacks (counts outside
    ``2 <= k < N`` are skipped). ``ascending``: the eigenvectors smallest first (default: from
    ``result.spectral``)."""
    vectors = result.spectral[:, ::-1] if ascending is None else ascending
    n = len(vectors)
    for c in sorted({int(c) for c in counts if 2 <= c < n} - set(result.clusterings)):
        result.clusterings[c] = kmeans(vectors if settings.kmeans_on == "all" else vectors[:, :c],
                                       c, settings.seed)


def kmeans(vectors: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means labels of ``vectors`` with rows scaled to unit length (with the ``k`` leading
    eigenvectors: Ng, Jordan and Weiss 2001), clusters numbered by size (0 the largest)."""
    from sklearn.cluster import KMeans

    u = _rows_normalized(vectors)
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

    # one job: a seeded UMAP runs serially anyway (and warns when asked for more); fewer
    # neighbours than UMAP's 15 for small groups (it warns, then truncates to n - 1 itself)
    neighbours = max(2, min(15, len(x) - 1))
    return np.asarray(umap.UMAP(n_components=2, n_neighbors=neighbours, random_state=seed,
                                n_jobs=1).fit_transform(x))
