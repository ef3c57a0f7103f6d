"""``lumos concepts DIR --layer L``: each concept's reference samples over a whole store.

From the concept statistics that ``explain-dataset --concepts L`` stored
(:mod:`lumos.store.concepts`) it ranks the samples of every concept by relevance (RelMax) and by
activation (ActMax) (:mod:`lumos.crp.relmax`), then computes each reference's conditional
heatmap for its concept with the store's model and LRP composite, and the box where the concept
is relevant (:mod:`lumos.crp.crop`). It also notes each concept's mean relevance (overall and
per target class) and each sample's most relevant concepts. Everything goes into
``DIR/concepts-<method>.h5`` (:mod:`lumos.crp.files`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lumos.crp import crop, files, relmax
from lumos.crp.files import ConceptAnalysis, References
from lumos.errors import UserError
from lumos.store.reader import Store, StoreError, open_store

#: Side (pixels) up to which per-sample heatmaps are stored as they are; larger ones shrink.
SAMPLE_SIDE = 112
BLOCK = 4096


def analyse(store: str | os.PathLike[str] | Store, layer: str, *, method: str | None = None,
            top: int = 8, normalize: str = "abs", reduce: str = "sum",
            concepts: Sequence[int] | None = None, heatmaps: bool = True,
            sample_top: int = 8, sample_heatmaps: int = 0, model: nn.Module | None = None,
            batch_size: int | None = None, device: str | torch.device = "cpu",
            progress: bool = True) -> ConceptAnalysis:
    """Reference samples of every concept of ``layer`` in ``store``, written to its concepts
    file and returned.

    Parameters
    ----------
    store:
        A store folder written with ``--concepts layer`` (or an open :class:`Store`).
    method:
        The ``lrp:`` method whose concepts to use (default: the only one with concepts).
    top:
        References per concept and mode.
    normalize, reduce:
        The ranking score (:mod:`lumos.crp.relmax`): ``abs`` (the concept's share of the
        sample's) or ``none``; ``sum`` over positions or ``max`` at one.
    concepts:
        The concepts whose references get conditional heatmaps (default: all); the ranking
        covers every concept.
    heatmaps:
        Compute the references' conditional heatmaps and crop boxes (needs the model).
    sample_top, sample_heatmaps:
        Each sample's most relevant concepts kept, and how many of them get a conditional
        heatmap of that sample (0: none).
    model:
        The store's model, for a store made from a Python model (default: loaded from the
        store's manifest).
    """
    st = store if isinstance(store, Store) else open_store(store)
    key = _method(st, method, layer)
    channels = st.concept_layers(key)[layer]
    if top < 1 or sample_top < 1 or sample_heatmaps < 0:
        raise UserError("--top and --sample-top must be >= 1, --sample-heatmaps >= 0")
    settings = {"top": top, "normalize": normalize, "reduce": reduce, "mass": crop.MASS}
    chosen = _chosen(concepts, channels)
    meta = _per_sample(st, key)
    refs: dict[str, References] = {}
    for mode in relmax.MODES:
        best = relmax.top_k(_blocks(st, key, layer, relmax.stat_name(mode, reduce)), top,
                            normalize)
        index = np.where(best.rows >= 0, meta["index"][np.maximum(best.rows, 0)], -1)
        refs[mode] = References(best.rows, index, best.values, np.zeros((*best.rows.shape, 4)))
    mean, per_class, sample_top_ids, share = _summaries(st, key, layer, meta["target"],
                                                        min(sample_top, channels))
    analysis = ConceptAnalysis(layer, key, settings, channels, False, chosen, refs, mean,
                               per_class, sample_top_ids, share)
    if heatmaps or sample_heatmaps:
        _heatmaps(st, key, analysis, model, heatmaps, sample_heatmaps, batch_size, device,
                  progress, meta["target"])
    files.write_layer(files.concepts_file(st.folder, key), key, analysis)
    return analysis


def read_analysis(store: str | os.PathLike[str], layer: str, method: str | None = None,
                  heatmaps: bool = True) -> ConceptAnalysis:
    """The concept analysis of ``layer`` that :func:`analyse` wrote into ``store``."""
    st = open_store(store)
    key = _method(st, method, layer)
    path = files.concepts_file(st.folder, key)
    found = files.read_all(path, heatmaps) if path.is_file() else {}
    if layer not in found:
        raise StoreError(f"{st.folder} has no concept analysis of layer {layer!r} for {key}; "
                         f"run `lumos concepts {st.folder} --layer {layer}`")
    return found[layer]


def _method(st: Store, method: str | None, layer: str) -> str:
    having = [k for k in st.methods if layer in st.concept_layers(k)]
    if method is not None:
        if method not in st.methods:
            raise StoreError(f"{st.folder} has no method {method!r}; it has "
                             f"{', '.join(st.methods)}")
        if method not in having:
            st.concepts(method, layer)  # raises, naming the layers it has
        return method
    if not having:
        layers = sorted({x for k in st.methods for x in st.concept_layers(k)})
        raise StoreError(f"{st.folder} has no concepts of layer {layer!r} (concept layers: "
                         f"{', '.join(layers) or 'none; run explain-dataset with --concepts'})")
    if len(having) > 1:
        raise UserError(f"several methods have concepts of {layer!r} ({', '.join(having)}); "
                        "choose one with --method")
    return having[0]


def _chosen(concepts: Sequence[int] | None, channels: int) -> np.ndarray:
    if concepts is None:
        return np.arange(channels)
    out = np.unique(np.asarray(list(concepts), dtype=np.int64))
    bad = out[(out < 0) | (out >= channels)]
    if len(bad):
        raise UserError(f"concept {int(bad[0])} is out of range: the layer has {channels} "
                        f"concepts (0..{channels - 1})")
    return out


def _per_sample(st: Store, key: str) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(st.path(key), "r") as f:
        fields = ("index", "target") if "target" in f else ("index", "label")
    got = st.arrays(key, fields)
    return {"index": got["index"].astype(np.int64),
            "target": got[fields[1]].astype(np.int64).reshape(len(got["index"]), -1)[:, 0]}


def _blocks(st: Store, key: str, layer: str, stat: str) -> Iterator[tuple[int, np.ndarray]]:
    import h5py

    with h5py.File(st.path(key), "r") as f:
        data = f[f"concepts/{layer}/{stat}"]
        for start in range(0, data.shape[0], BLOCK):
            yield start, np.asarray(data[start:start + BLOCK], dtype=np.float64)


def _summaries(st: Store, key: str, layer: str, target: np.ndarray, keep: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean relevance per concept (all samples, and per target class) and each sample's
    ``keep`` most relevant concepts with their shares."""
    total, per_class = None, None
    counts = np.bincount(target, minlength=max(1, int(target.max()) + 1 if len(target) else 1))
    tops, shares = [], []
    for start, rel in _blocks(st, key, layer, "relevance"):
        if total is None or per_class is None:
            total = np.zeros(rel.shape[1])
            per_class = np.zeros((len(counts), rel.shape[1]))
        total += rel.sum(0)
        np.add.at(per_class, target[start:start + len(rel)], rel)
        s = relmax.scores(rel, "abs")
        order = np.argsort(-s, axis=1, kind="stable")[:, :keep]
        tops.append(order)
        shares.append(np.take_along_axis(s, order, 1))
    if total is None or per_class is None:
        raise StoreError(f"{st.folder} has no samples")
    mean = total / max(1, len(target))
    per_class = per_class / np.maximum(counts, 1)[:, None]
    return mean, per_class, np.concatenate(tops), np.concatenate(shares)


def _heatmaps(st: Store, key: str, a: ConceptAnalysis, model: nn.Module | None,
              references: bool, per_sample: int, batch_size: int | None,
              device: str | torch.device, progress: bool, target: np.ndarray) -> None:
    """Conditional heatmaps and crop boxes of the references (and of each sample's top
    concepts), with the store's model and composite."""
    from lumos.crp.attribution import CRP
    from lumos.progress import Progress

    net, composite = _model(st, key, model)
    crp = CRP(net.to(device), composite)
    inputs = _Inputs(st)
    example = inputs.rows(np.array([0])).to(device)
    a.token_layer = _is_tokens(crp, a.layer, example)
    jobs = []
    if references:
        for mode, refs in a.references.items():
            pairs = [(c, j) for c in a.heatmap_concepts for j in range(refs.row.shape[1])
                     if refs.row[c, j] >= 0]
            jobs.append((mode, pairs, [int(refs.row[c, j]) for c, j in pairs],
                         [int(c) for c, _ in pairs]))
    t = min(per_sample, a.sample_top.shape[1])
    if t:
        pairs = [(r, j) for r in range(len(a.sample_top)) for j in range(t)]
        jobs.append(("samples", pairs, [r for r, _ in pairs],
                     [int(a.sample_top[r, j]) for r, j in pairs]))
    bar = Progress(sum(len(j[1]) for j in jobs), f"concepts {a.layer}", enabled=progress)
    rows_per_pass = batch_size or 64
    h, w = example.shape[-2:]
    for mode, pairs, rows, concepts in jobs:
        side = (h, w) if mode != "samples" else _shrunk(h, w)
        lead = ((a.sample_top.shape[0], t) if mode == "samples"
                else tuple(a.references[mode].row.shape))
        heat = np.zeros((*lead, *side), dtype=np.float16)
        for lo in range(0, len(pairs), rows_per_pass):
            chunk = slice(lo, lo + rows_per_pass)
            r = np.array(rows[chunk])
            x = inputs.rows(r).to(device)
            maps, _, positions = crp.explain_each(
                x, torch.as_tensor(target[r]), [{a.layer: c} for c in concepts[chunk]],
                batch_size=batch_size)
            summed = maps.sum(1).detach().cpu()
            for (i, j), m, p in zip(pairs[chunk], summed, positions, strict=True):
                if mode == "samples":
                    heat[i, j] = _shrink(m, side).numpy()
                    continue
                heat[i, j] = m.numpy()
                box = crop.token_box(p.cpu().numpy(), h, w) if a.token_layer else None
                a.references[mode].box[i, j] = box or crop.pixel_box(m.numpy())
            bar.update(len(r))
        if mode == "samples":
            a.sample_heatmap = heat
        else:
            a.references[mode].heatmap = heat
    bar.close()
    inputs.close()
    if not references:
        a.heatmap_concepts = np.zeros(0, dtype=np.int64)
    for refs in a.references.values():  # boxes of references without heatmaps: everything
        empty = (refs.box[..., 2] == 0) & (refs.row >= 0)
        refs.box[empty] = (0, 0, h, w)


def _is_tokens(crp: Any, layer: str, example: Tensor) -> bool:
    """Whether ``layer`` is a token stream: ``(N, tokens, features)`` with features last."""
    shape = crp.shapes([layer], example)[layer]
    return crp.layer(layer, example).channel_dim == -1 and len(shape) == 2


def _shrunk(h: int, w: int) -> tuple[int, int]:
    scale = min(1.0, SAMPLE_SIDE / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _shrink(m: Tensor, side: tuple[int, int]) -> Tensor:
    if tuple(m.shape) == side:
        return m
    return torch.nn.functional.adaptive_avg_pool2d(m[None, None].float(), side)[0, 0]


class _Inputs:
    """Rows of the store's ``input.h5`` (the model inputs as preprocessed)."""

    def __init__(self, st: Store) -> None:
        import h5py

        path = st.folder / "input.h5"
        if not path.is_file():
            raise StoreError(f"{st.folder} has no input.h5: the heatmaps need the inputs")
        self.file = h5py.File(path, "r")

    def rows(self, rows: np.ndarray) -> Tensor:
        order = np.argsort(rows, kind="stable")
        unique, inverse = np.unique(rows[order], return_inverse=True)
        data = np.asarray(self.file["data"][unique])[inverse]
        out = np.empty_like(data)
        out[order] = data
        return torch.from_numpy(out)

    def close(self) -> None:
        self.file.close()


def _model(st: Store, key: str, model: nn.Module | None) -> tuple[nn.Module, Any]:
    """The store's model (loaded from its manifest unless given) and the method's composite."""
    from lumos.experiments.methods import Domain, composite

    m = st.manifest
    if model is None:
        from lumos.store.sources import load_model

        spec = (m.get("source") or {}).get("model")
        if not spec:
            raise UserError("this store was made from a Python model: pass it, "
                            "lumos.crp.analyse(DIR, layer, model=model)")
        try:
            clf, fingerprint = load_model(spec, (m.get("source") or {}).get("weights"))
        except (FileNotFoundError, OSError) as err:
            raise UserError(f"cannot load the store's model {spec!r}: {err}") from err
        stored = {k: v for k, v in m["model"].items() if k not in ("mean", "std", "input_size")}
        if fingerprint != stored:
            raise UserError(f"the model {spec!r} now has other weights than when the store "
                            "was made; pass the original with model=")
        model = clf.model
    domain = Domain.from_normalization(m["model"]["mean"], m["model"]["std"])
    return model.eval(), composite(key, domain.low, domain.high)
