"""The kNN affinity graph of SpRAy, its normalised Laplacian and its smallest eigenpairs.

- :func:`knn`: exact k nearest neighbours (blocked brute force), or, for large classes, an
  inverted-file search: points are grouped into k-means cells and every point is also stored in
  its ``probe`` nearest cells, so a query compares only with the points of its own cell.
- :func:`affinity`: a symmetric sparse matrix on the kNN edges: self-tuning Gaussian weights
  ``w_ij = exp(-d_ij^2 / (s_i s_j))`` with ``s_i`` the distance to the k-th neighbour
  (Zelnik-Manor & Perona 2004) on the union of the edges (lumos's default), or CoRelAy's
  binary weights ``(A + A^T) / 2`` (1 where both are neighbours of each other, 1/2 one way).
- :func:`spectrum`: eigenvalues and eigenvectors of ``L = I - D^-1/2 W D^-1/2``: the smallest
  ones, or (CoRelAy's choice) those of ``D^-1/2 W D^-1/2`` largest in magnitude.
- :func:`eigengap`: the number of clusters the largest gap between them suggests.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

Tick = Callable[[int], None]

#: Edge weights of :func:`affinity`.
AFFINITIES = ("self-tuning", "binary")
#: Which eigenpairs :func:`spectrum` computes.
SELECTIONS = ("smallest", "magnitude")


def knn(x: np.ndarray, k: int, *, approximate: bool = False, cells: int | None = None,
        probe: int = 3, seed: int = 0, block: int = 512, tick: Tick | None = None,
        precise: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest neighbours of every row of ``x`` (itself excluded).

    Returns ``(index, distance)``, both ``(N, k)``, nearest first, Euclidean distances.
    ``tick(n)`` is called as rows are done (a progress bar). ``precise``: distances in float64
    (else float32), for binary weights, where one neighbour swapped by rounding
    changes an edge.
    """
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < number of samples, got k={k} for {n} samples")
    x = np.ascontiguousarray(x, dtype=np.float64 if precise else np.float32)
    if not approximate:
        return exact_search(x, np.arange(n), np.arange(n), k, block, tick)
    return _inverted_file(x, k, cells or max(8, int(np.sqrt(n))), probe, seed, block, tick)


def exact_search(x: np.ndarray, queries: np.ndarray, pool: np.ndarray, k: int, block: int,
            tick: Tick | None) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN of ``x[queries]`` among ``x[pool]``, skipping each query itself.

    Distances are computed in the dtype of ``x``: float64 gives the neighbour order of an exact
    distance matrix (SciPy's ``pdist``, which CoRelAy uses) up to exact ties.
    """
    candidates = x[pool]
    sq = np.einsum("ij,ij->i", candidates, candidates)
    index = np.empty((len(queries), k), dtype=np.int64)
    dist = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), block):
        q = queries[start:start + block]
        xq = x[q]
        d2 = sq[None, :] - 2.0 * (xq @ candidates.T) + np.einsum("ij,ij->i", xq, xq)[:, None]
        _drop_self(d2, q, pool)
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        near = np.take_along_axis(d2, part, axis=1)
        order = np.argsort(near, axis=1)
        index[start:start + len(q)] = pool[np.take_along_axis(part, order, axis=1)]
        dist[start:start + len(q)] = np.sqrt(np.clip(np.take_along_axis(near, order, axis=1),
                                                     0.0, None))
        if tick is not None:
            tick(len(q))
    return index, dist


def _drop_self(d2: np.ndarray, queries: np.ndarray, pool: np.ndarray) -> None:
    """Set the distance of every query to itself to infinity (``pool`` is sorted)."""
    pos = np.minimum(np.searchsorted(pool, queries), len(pool) - 1)
    hit = pool[pos] == queries
    d2[np.flatnonzero(hit), pos[hit]] = np.inf


def _inverted_file(x: np.ndarray, k: int, cells: int, probe: int, seed: int, block: int,
                   tick: Tick | None) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans

    cells = min(cells, len(x) // (k + 1))
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(len(x), size=min(len(x), 20 * cells), replace=False)]
    centres = KMeans(n_clusters=cells, n_init=1, max_iter=25, random_state=seed
                     ).fit(sample).cluster_centers_.astype(np.float32)
    d2 = np.einsum("ij,ij->i", centres, centres)[None, :] - 2.0 * x @ centres.T
    near = np.argsort(d2, axis=1)[:, :max(1, probe)]
    home, stored = near[:, 0], near
    members = [np.flatnonzero((stored == c).any(axis=1)) for c in range(cells)]
    index = np.empty((len(x), k), dtype=np.int64)
    dist = np.empty((len(x), k), dtype=np.float32)
    for c in range(cells):
        queries = np.flatnonzero(home == c)
        pool = members[c]
        if len(queries) == 0:
            continue
        if len(pool) <= k:  # a tiny cell: search everything
            pool = np.arange(len(x))
        i, d = exact_search(x, queries, pool, k, block, tick)
        index[queries], dist[queries] = i, d
    return index, dist


def affinity(index: np.ndarray, dist: np.ndarray, kind: str = "self-tuning") -> sp.csr_matrix:
    """Symmetric sparse affinity on the kNN edges: self-tuning Gaussian weights on their union
    (``kind="self-tuning"``), or CoRelAy's ``SparseKNN``: weight 1 per edge, then
    ``(A + A^T) / 2`` (``kind="binary"``)."""
    if kind not in AFFINITIES:
        raise ValueError(f"affinity must be one of {', '.join(AFFINITIES)}, got {kind!r}")
    n, k = index.shape
    rows = np.repeat(np.arange(n), k)
    cols = index.ravel()
    if kind == "binary":
        a = sp.csr_matrix((np.ones(n * k), (rows, cols)), shape=(n, n))
        return ((a + a.T) / 2.0).tocsr()
    scale = np.maximum(dist[:, -1].astype(np.float64), 1e-12)
    w = np.exp(-(dist.ravel().astype(np.float64) ** 2) / (scale[rows] * scale[cols]))
    directed = sp.csr_matrix((w, (rows, cols)), shape=(n, n))
    return directed.maximum(directed.T).tocsr()


def normalized_affinity(w: sp.spmatrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """``D^-1/2 W D^-1/2`` and the degrees ``D`` (an isolated node keeps degree 0)."""
    degree = np.asarray(w.sum(axis=1)).ravel()
    inv = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0)
    d = sp.diags(inv)
    return (d @ w @ d).tocsr(), degree


def laplacian(w: sp.spmatrix) -> sp.csr_matrix:
    """The symmetric normalised Laplacian ``I - D^-1/2 W D^-1/2``."""
    m, _ = normalized_affinity(w)
    return (sp.identity(m.shape[0], format="csr") - m).tocsr()


def spectrum(w: sp.spmatrix, n_eigen: int, seed: int = 0, select: str = "smallest"
             ) -> tuple[np.ndarray, np.ndarray]:
    """``n_eigen`` eigenvalues of the normalised Laplacian, ascending, and their eigenvectors
    ``(N, n_eigen)``.

    Computed as eigenpairs of ``M = D^-1/2 W D^-1/2`` (eigenvalues ``mu = 1 - lambda``) with
    ``scipy.sparse.linalg.eigsh``; small graphs use a dense solver. ``select="smallest"``: the
    smallest ``lambda`` (largest ``mu``); ``"magnitude"``: the largest ``|mu|``, as CoRelAy's
    ``EigenDecomposition`` (``eigsh(which="LM")``) picks them; it differs only when ``L`` has
    eigenvalues near 2 (nearly bipartite parts of the graph).
    """
    if select not in SELECTIONS:
        raise ValueError(f"select must be one of {', '.join(SELECTIONS)}, got {select!r}")
    m, _ = normalized_affinity(w)
    n = m.shape[0]
    n_eigen = min(n_eigen, n)
    if n <= max(64, 2 * n_eigen + 1):
        mu, vec = np.linalg.eigh(m.toarray())
        keep = np.argsort(-(mu if select == "smallest" else np.abs(mu)), kind="stable")[:n_eigen]
        mu, vec = mu[keep], vec[:, keep]
    else:
        from scipy.sparse.linalg import eigsh

        v0 = np.random.default_rng(seed).standard_normal(n)
        # "LM" runs from both ends of the spectrum at once; at tol 1e-8 it missed a repeated
        # eigenvalue (a graph in two parts) in tests/analysis/test_graph.py, at 1e-10 it did not
        smallest = select == "smallest"
        mu, vec = eigsh(m, k=n_eigen, which="LA" if smallest else "LM", v0=v0,
                        tol=1e-8 if smallest else 1e-10)
    order = np.argsort(-mu, kind="stable")
    return np.clip(1.0 - mu[order], 0.0, 2.0), _fix_signs(vec[:, order])


def _fix_signs(vec: np.ndarray) -> np.ndarray:
    """Eigenvectors with the largest-magnitude entry positive (reproducible across runs)."""
    pick = np.abs(vec).argmax(axis=0)
    signs = np.sign(vec[pick, np.arange(vec.shape[1])])
    return vec * np.where(signs == 0, 1.0, signs)


def eigengap(eigenvalues: np.ndarray, max_k: int) -> int:
    """The cluster count ``k`` in ``[2, max_k]`` with the largest gap ``lambda_k - lambda_{k-1}``
    (eigenvalues ascending, 0-based: the first ``k`` are small, the next one is not)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    top = min(max_k, len(lam) - 1)
    if top < 2:
        raise ValueError(f"the eigengap needs at least 3 eigenvalues, got {len(lam)}")
    gaps = lam[2:top + 1] - lam[1:top]
    return int(np.argmax(gaps)) + 2
