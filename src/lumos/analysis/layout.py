"""Files of a store directory that SpRAy reads and writes (ViRelAy's HDF5 layouts).

Read (the store of ``lumos explain-dataset``, docs/store.md): the method's file named in
``DIR/manifest.json`` (``DIR/<method-key>.h5`` in a folder without a manifest), with
``attribution (N, C, H, W)``, ``prediction (N, classes)``, ``label (N,)`` and ``index (N,)``
(the sample's position in the dataset), and
``DIR/input.h5`` with ``data (N, C, H, W)``, ``label (N,)`` and ``index (N,)``.

Written: ``DIR/analysis-<stem>.h5``, one group per analysed class (named by the class index),
in the analysis layout of ViRelAy's user guide ("How to create a project")::

    <class>/index (n,)                 sample indices (as in the store), the rows of everything
    <class>/embedding/spectral (n, E)  eigenvectors of the normalised Laplacian, with the
                                       attribute ``eigenvalue`` (E,), in CoRelAy's order:
                                       descending, the smallest (0) last
    <class>/embedding/tsne (n, 2)      attributes ``embedding`` = "spectral" and ``index`` (the
                                       spectral dimensions it was computed from); umap likewise
    <class>/cluster/kmeans-<kk> (n,)   k-means labels (kk two digits), attributes ``embedding``,
                                       ``k`` and ``index`` (the eigenvectors clustered); every
                                       class has the same ones (ViRelAy needs that), but for
                                       counts as large as a class's sample count

and, for lumos (ViRelAy reads only the keys above)::

    <class>/name, <class>/row (n,)     the class's name; rows of the method's attribution file
    <class>/prototype/kmeans-<kk>      (k, H, W) the cluster mean heatmaps
    <class>/agreement/border_fraction  (n,) share of |relevance| on the image border
    <class>/agreement/rank_correlation/<other-key>  (n,) Spearman rho with the other method

Attributes: ``eigengap_k`` on each class group; ``settings`` (JSON), ``method`` and
``spectrum_order`` = ``"descending"`` on the file. Files of lumos 0.1 before that attribute hold
the spectrum ascending (smallest first); :func:`read_analysis` turns them around
(:func:`lumos.store.layout.spectrum_order` tells them apart).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lumos.atomic import atomic_file
from lumos.store.layout import ANALYSIS_PREFIX, SPECTRUM_ORDER, analysis_file, spectrum_order
from lumos.store.reader import StoreError, read_manifest


def _manifest_methods(directory: Path) -> dict[str, str] | None:
    """``{method key: file name}`` from ``DIR/manifest.json``, or None without a manifest."""
    manifest = read_manifest(directory)
    if manifest is None:
        return None
    try:
        return {str(k): str(v["file"]) for k, v in manifest["methods"].items()}
    except (KeyError, TypeError, AttributeError):
        return None


def method_keys(directory: str | os.PathLike[str]) -> list[str]:
    """The method keys with an attribution file in ``directory``: the manifest's (in its
    order) when there is one, else the stems of the ``*.h5`` files, sorted."""
    d = Path(directory)
    if not d.is_dir():
        raise StoreError(f"{d} is not a directory")
    listed = _manifest_methods(d)
    if listed is not None:
        return [k for k, name in listed.items() if (d / name).is_file()]
    return sorted(p.stem for p in d.glob("*.h5")
                  if p.name != "input.h5" and not p.name.startswith(ANALYSIS_PREFIX)
                  and not p.name.startswith("."))


def attribution_path(directory: str | os.PathLike[str], key: str) -> Path:
    """The attribution file of method ``key``, checked to exist (the error lists the keys)."""
    keys = method_keys(directory)
    if key not in keys:
        have = ", ".join(keys) or "none"
        raise StoreError(f"no attributions for method {key!r} in {directory} (found: {have})")
    listed = _manifest_methods(Path(directory))
    return Path(directory) / (listed[key] if listed else f"{key}.h5")


def analysis_path(directory: str | os.PathLike[str], key: str) -> Path:
    """Where the analysis of method ``key`` goes: ``DIR/analysis-<stem>.h5`` (the stem as in
    the store: ``lrp:epsilon-plus`` -> ``lrp-epsilon-plus``)."""
    return analysis_file(Path(directory), key)


@dataclass
class MethodFile:
    """The per-sample arrays of one method's attribution file (attributions stay on disk)."""

    path: Path
    label: np.ndarray
    index: np.ndarray
    prediction: np.ndarray
    shape: tuple[int, ...]

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> MethodFile:
        """Read the small arrays of ``path`` and check the layout."""
        import h5py

        try:
            with h5py.File(path, "r") as f:
                missing = [k for k in ("attribution", "label") if k not in f]
                if missing:
                    raise StoreError(f"{path} has no dataset {missing[0]!r} (not an "
                                     "attribution file of a lumos store)")
                shape = tuple(f["attribution"].shape)
                n = shape[0]
                label = np.asarray(f["label"][()]).astype(np.int64).reshape(n, -1)[:, 0]
                index = (np.asarray(f["index"][()], dtype=np.int64) if "index" in f
                         else np.arange(n))
                pred = (np.asarray(f["prediction"][()], dtype=np.float32) if "prediction" in f
                        else np.zeros((n, 0), np.float32))
        except OSError as err:
            raise StoreError(f"{path} cannot be read as HDF5 ({err})") from err
        if len(shape) not in (3, 4) or len(index) != n or len(pred) != n:
            raise StoreError(f"{path}: attribution {shape}, label, index and prediction "
                             "do not describe the same samples")
        return cls(Path(path), label, index, pred, shape)

    def blocks(self, block: int = 2048) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, (B, H, W) float32 maps with channels summed)`` over the whole file."""
        import h5py

        with h5py.File(self.path, "r") as f:
            ds = f["attribution"]
            for start in range(0, self.shape[0], block):
                a = np.asarray(ds[start:start + block], dtype=np.float32)
                yield start, a.sum(axis=1) if a.ndim == 4 else a

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Channel-summed maps of the given rows (any order), float32."""
        import h5py

        order = np.argsort(rows)
        with h5py.File(self.path, "r") as f:
            a = np.asarray(f["attribution"][rows[order]], dtype=np.float32)
        a = a.sum(axis=1) if a.ndim == 4 else a
        out = np.empty_like(a)
        out[order] = a
        return out


def write_analysis(path: str | os.PathLike[str], method: str, settings: dict[str, Any],
                   classes: dict[str, dict[str, Any]]) -> Path:
    """Write an analysis file atomically; ``classes`` maps a group name to its arrays (see the
    module docstring; keys ``name index row spectral eigenvalue tsne umap clusterings
    prototypes eigengap_k agreement``)."""
    import h5py

    with atomic_file(path, "w+b") as handle, h5py.File(handle, "w") as f:
        f.attrs["method"] = method
        f.attrs["settings"] = json.dumps(settings)
        f.attrs["spectrum_order"] = SPECTRUM_ORDER
        for group, c in classes.items():
            _write_class(f.create_group(group), c)
    return Path(path)


def _write_class(g: Any, c: dict[str, Any]) -> None:
    g["name"] = c["name"]
    g["index"] = np.asarray(c["index"], dtype=np.uint32)
    g["row"] = np.asarray(c["row"], dtype=np.uint32)
    g.attrs["eigengap_k"] = int(c["eigengap_k"])
    spectral = np.asarray(c["spectral"], dtype=np.float32)
    width = spectral.shape[1]
    emb = g.create_group("embedding")
    emb["spectral"] = spectral
    emb["spectral"].attrs["eigenvalue"] = np.asarray(c["eigenvalue"], dtype=np.float32)
    for key in ("tsne", "umap"):
        if c.get(key) is not None:
            emb[key] = np.asarray(c[key], dtype=np.float32)
            emb[key].attrs["embedding"] = "spectral"
            emb[key].attrs["index"] = _smallest_columns(width, c["drawn_from"])
    clusters, protos = g.create_group("cluster"), g.create_group("prototype")
    for k, labels in c["clusterings"].items():
        name = clustering_name(k)
        clusters[name] = np.asarray(labels, dtype=np.uint32)
        used = (np.arange(width, dtype=np.uint32) if c.get("kmeans_on") == "all"
                else _smallest_columns(width, k))
        clusters[name].attrs.update({"embedding": "spectral", "k": int(k), "index": used})
        protos[name] = np.asarray(c["prototypes"][k], dtype=np.float32)
    agree = g.create_group("agreement")
    agree["border_fraction"] = np.asarray(c["agreement"]["border_fraction"], dtype=np.float32)
    agree.attrs["border_width"] = int(c["agreement"]["border_width"])
    ranks = agree.create_group("rank_correlation")
    for other, rho in c["agreement"]["rank_correlation"].items():
        ranks[other] = np.asarray(rho, dtype=np.float32)


def _smallest_columns(width: int, count: int) -> np.ndarray:
    """Columns of the ``count`` smallest eigenvalues in a spectrum of ``width``, smallest first."""
    return np.arange(width - 1, width - 1 - min(count, width), -1).astype(np.uint32)


def clustering_name(k: int) -> str:
    """ViRelAy's name of the k-means clustering with ``k`` clusters: ``kmeans-03``."""
    return f"kmeans-{int(k):02d}"


def read_analysis(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """An analysis file as ``{class group: {name, index, row, eigengap_k, eigenvalue,
    embeddings {key: (n, 2+)}, clusterings {k: labels}, prototypes {k: (k, H, W)},
    border_fraction, rank_correlation {other: rho}}}``; ``eigenvalue`` and the columns of
    ``embeddings["spectral"]`` in CoRelAy's order (descending), also from older files."""
    import h5py

    out: dict[str, dict[str, Any]] = {}
    with h5py.File(path, "r") as f:
        turn = slice(None, None, -1 if spectrum_order(f) == "ascending" else 1)
        for group, g in f.items():
            emb, clusters, agree = g["embedding"], g["cluster"], g["agreement"]
            embeddings = {k: emb[k][()] for k in emb}
            embeddings["spectral"] = embeddings["spectral"][:, turn]
            out[group] = {
                "name": _text(g["name"][()]), "index": g["index"][()], "row": g["row"][()],
                "eigengap_k": int(g.attrs["eigengap_k"]),
                "eigenvalue": emb["spectral"].attrs["eigenvalue"][turn],
                "embeddings": embeddings,
                "clusterings": {int(clusters[k].attrs["k"]): clusters[k][()] for k in clusters},
                "prototypes": {int(clusters[k].attrs["k"]): g["prototype"][k][()]
                               for k in clusters},
                "border_fraction": agree["border_fraction"][()],
                "rank_correlation": {k: v[()] for k, v in agree["rank_correlation"].items()},
            }
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
