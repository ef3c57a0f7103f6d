"""``explain_dataset``: explain every sample of a dataset into a store, resumably, on 1..K ranks.

Rank 0 checks the folder (same settings, or refuse, or ``overwrite``), lists the finished
shards and deals out the rest; every rank computes its shards (:mod:`lumos.store.compute`);
rank 0 then joins the shards into the final files and writes the manifest.
"""

from __future__ import annotations

import datetime
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lumos import distributed
from lumos.errors import UserError
from lumos.store import keyed, layout, shards
from lumos.store.compute import PREDICT, AttributeOnly, ExplainFn, Work, overlap_io, run_rank
from lumos.store.reader import Store, open_store, read_manifest
from lumos.store.sources import DataSource, default_split, load_data, load_model, wrap_module

DTYPES: dict[str, np.dtype] = {"float32": np.dtype(np.float32),
                               "float16": np.dtype(np.float16)}


def explain_dataset(model: str | nn.Module, dataset: str, methods: Sequence[str],
                    out: str | os.PathLike[str], *, split: str | None = None,
                    limit: int | None = None, target: str | int = "predicted",
                    shard_size: int = 1000, dtype: str = "float32", batch_size: int = 32,
                    device: str | torch.device | None = None, workers: int | None = None,
                    weights: str | os.PathLike[str] | None = None,
                    data_dir: str | os.PathLike[str] | None = None, download: bool = False,
                    ig: dict[str, Any] | None = None, overwrite: bool = False,
                    progress: bool = True,
                    normalization: tuple[list[float], list[float]] | None = None,
                    input_size: int | None = None, classes: list[str] | None = None,
                    concepts: Sequence[str] = ()) -> Store:
    """Explain every sample of ``dataset`` under ``model`` with each of ``methods``, into ``out``.

    Parameters
    ----------
    model:
        A lumos checkpoint, ``mnist5k-cnn``, ``efficientnet-lite0``, a torchvision name or
        ``timm:NAME`` (see :func:`lumos.store.sources.load_model`; ``weights``: a local
        state dict for the last two); or an ``nn.Module`` (a deep copy is used; say its
        ``normalization=(mean, std)``, ``input_size`` and ``classes``, default ``[0, 1]``
        pixels, 28 for one channel else 224, and ``0..n-1``).
    dataset:
        ``mnist-5k``, ``mnist``, ``fashion-mnist``, ``imagenette``, ``imagewoof`` (under
        ``data_dir``) or ``folder:DIR``; ``split`` is ``train``, ``test`` or ``all`` (default:
        ``all`` for a plain folder, else ``test``); ``limit`` keeps the first samples.
    methods:
        Method keys: ``ig``, ``lrp:epsilon-plus``, ``lrp:epsilon-gamma-box``, ``gradient``, ...
    target:
        ``predicted`` (top-1 class), ``label`` (the dataset's label) or a class index.
    shard_size, batch_size:
        Samples per shard (the unit of resuming) and per explanation batch.
    dtype:
        ``float32`` or ``float16`` for the stored attributions.
    ig:
        Options of IG's ``explain`` (default ``{"tolerance": 0.01, "max_steps": 256}``).
    overwrite:
        Start afresh when ``out`` holds a store made with other settings (else: refuse).
    concepts:
        Concept layers (module paths, e.g. ``features.28``): every ``lrp:`` method also
        stores each sample's concept relevances and activations of these layers
        (:mod:`lumos.store.concepts`), from the same pass as its heatmap.

    Returns
    -------
    Store
        The finished store (read-only).

    Notes
    -----
    Under ``torchrun`` every rank calls this with the same arguments; each computes disjoint
    shards and rank 0 assembles the store.
    """
    if dtype not in DTYPES:
        raise UserError(f"--dtype must be float16 or float32, got {dtype!r}")
    for name, value in (("--batch-size", batch_size), ("--shard-size", shard_size)):
        if value < 1:
            raise UserError(f"{name} must be >= 1, got {value}")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be >= 1, got {limit}")
    world = distributed.setup(device)
    try:
        if isinstance(model, str):
            loaded = load_model(model, weights)
        else:
            loaded = wrap_module(model, normalization, input_size, classes)
        return _run(world, loaded, model if isinstance(model, str) else None, dataset,
                    list(methods), Path(out), split, limit, target, shard_size, dtype,
                    batch_size, workers, weights, data_dir, download, ig, overwrite, progress,
                    list(concepts))
    finally:
        distributed.teardown(world)


def _run(world: distributed.World, loaded: tuple[Any, dict[str, Any]], model_spec: str | None,
         data_spec: str, keys: list[str],
         folder: Path, split: str | None, limit: int | None, target: str | int,
         shard_size: int, dtype: str, batch_size: int, workers: int | None,
         weights: Any, data_dir: Any, download: bool, ig: dict[str, Any] | None,
         overwrite: bool, progress: bool, concepts: list[str]) -> Store:
    from lumos.experiments import methods as mt

    try:
        parsed = [mt.parse(k) for k in keys]
    except ValueError as err:
        raise UserError(str(err)) from err
    if not parsed or len({m.key for m in parsed}) != len(parsed):
        raise UserError("give each --method once (at least one)")
    clf, model_fp = loaded
    source = load_data(data_spec, clf, split or default_split(data_spec), data_dir, download)
    n = min(len(source), limit or len(source))
    target = _check_target(target, len(clf.classes))
    options = {m.key: _options(m.kind, ig) for m in parsed}
    channels = _concept_layers(concepts, parsed, clf, source)
    settings = {"format": "lumos-store", "model": {**model_fp, "mean": clf.mean,
                                                   "std": clf.std, "input_size": clf.size},
                "dataset": {"spec": "folder" if data_spec.startswith("folder:") else data_spec,
                            "split": source.split, "size": len(source),
                            "classes": source.classes},
                "data_fingerprint": keyed.settings_hash(source.fingerprint), "n": n,
                "target": target,
                "dtype": dtype, "batch_size": batch_size, "shard_size": shard_size,
                "methods": options, "lumos_version": _version(),
                **({"concepts": channels} if channels else {})}
    digest = keyed.settings_hash(settings)
    todo = shards.ranges(n, shard_size)
    message: str | None = None
    pending: list[shards.Range] = []
    origin = {"model": model_spec, "weights": _absolute(weights), "dataset": _absolute_spec(
        data_spec), "data_dir": _absolute(data_dir), "split": source.split}
    if world.is_main:
        message, pending = _prepare(folder, {**settings, "source": origin}, digest, todo,
                                    overwrite, world)
    message, pending = distributed.broadcast(world, (message, pending))
    if message:
        raise UserError(message)
    stems = {m.key: layout.method_stem(m.key) for m in parsed}
    attrs: dict[str, dict[str, Any]] = {layout.INPUT: {"settings_hash": digest}, **{
        stem: {"method": key, "settings_hash": digest} for key, stem in stems.items()}}
    assembly = layout.Assembly(folder, n, attrs) if world.is_main else None
    try:
        if pending:
            _compute(world, folder, clf, source, parsed, options, pending, batch_size, target,
                     dtype, digest, workers, progress, stems, assembly, list(channels))
        distributed.barrier(world)
        if assembly is not None:
            _finish(folder, settings, digest, todo, stems, assembly)
    except BaseException:
        if assembly is not None:
            assembly.abort()
        raise
    distributed.barrier(world)
    store = open_store(folder)
    store.computed = len(pending)
    return store


def _concept_layers(concepts: list[str], parsed: list[Any], clf: Any,
                    source: DataSource) -> dict[str, int]:
    """``{layer: channels}`` of the ``--concepts`` layers, checked on the first sample."""
    if not concepts:
        return {}
    if not any(m.kind == "lrp" for m in parsed):
        raise UserError("--concepts needs an LRP method (--method lrp:COMPOSITE): concept "
                        "relevances are read from its backward pass")
    if len(source) == 0:
        raise UserError("the dataset is empty")
    from lumos.store.concepts import check_layers

    example = source.dataset[0][0][None]
    return check_layers(clf.model, example, concepts)


def _absolute(path: Any) -> str | None:
    return None if path is None else str(Path(path).resolve())


def _absolute_spec(spec: str) -> str:
    return f"folder:{Path(spec[7:]).resolve()}" if spec.startswith("folder:") else spec


def _check_target(target: str | int, n_classes: int) -> str | int:
    if target in ("predicted", "label"):
        return target
    try:
        value = int(target)
    except (TypeError, ValueError):
        raise UserError(f"--target must be predicted, label or a class index, got "
                        f"{target!r}") from None
    if not 0 <= value < n_classes:
        raise UserError(f"--target {value} is out of range for {n_classes} classes")
    return value


def _options(kind: str, ig: dict[str, Any] | None) -> dict[str, Any]:
    if kind == "ig":
        return dict(ig) if ig else {"tolerance": 0.01, "max_steps": 256}
    return {}


def _version() -> str:
    from lumos import __version__

    return __version__


def _prepare(folder: Path, settings: dict[str, Any], digest: str, todo: list[shards.Range],
             overwrite: bool, world: distributed.World) -> tuple[str | None, list[Any]]:
    """Rank 0: refuse, wipe or resume the folder; the shards still to compute."""
    old = read_manifest(folder)
    if old is None and folder.is_dir() and any(folder.iterdir()) and not overwrite:
        return (f"--out {folder} is not empty and holds no lumos store; pick another folder "
                "or pass --overwrite", [])
    settings, origin = {k: v for k, v in settings.items() if k != "source"}, settings["source"]
    if old is not None and old.get(keyed.HASH_KEY) != digest and not overwrite:
        return (f"--out {folder} holds a store made with other settings "
                f"({_difference(old, settings)}); rerun with the same settings to resume, "
                "or pass --overwrite to start afresh", [])
    if overwrite and (old is None or old.get(keyed.HASH_KEY) != digest):
        _wipe(folder)
        old = None
    folder.mkdir(parents=True, exist_ok=True)
    if old is not None and old.get("complete"):
        shutil.rmtree(folder / layout.SHARDS, ignore_errors=True)
        return None, []
    layout.remove_partials(folder)
    done = shards.finished(folder, digest)
    pending = [r for r in todo if r not in done]
    runs = list(old.get("runs", [])) if old else []
    runs.append({"run": len(runs) + 1, "world_size": world.size, "device": str(world.device),
                 "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                     timespec="seconds"), "shards_computed": len(pending)})
    keyed.write_record(folder / layout.MANIFEST, {
        **settings, "source": origin, keyed.HASH_KEY: digest, "complete": False,
        "shards_total": len(todo),
        "shards_done": len(done), "runs": runs, "started_unix": time.time()})
    return None, pending


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Which settings differ, in words (a finished manifest's methods also hold file/seconds)."""
    methods = old.get("methods")
    if old.get("complete") and isinstance(methods, dict):
        old = {**old, "methods": {k: v.get("options") for k, v in methods.items()}}
    changed = [k for k in new if k != "data_fingerprint" and old.get(k) != new[k]]
    if old.get("concepts") != new.get("concepts") and "concepts" not in changed:
        changed.append("concepts")
    if not changed and old.get("data_fingerprint") != new.get("data_fingerprint"):
        changed = ["dataset files"]
    return "different " + ", ".join(changed) if changed else "another lumos version"


def _wipe(folder: Path) -> None:
    """Remove what a store consists of (manifest, shards, *.h5), nothing else."""
    shutil.rmtree(folder / layout.SHARDS, ignore_errors=True)
    (folder / layout.MANIFEST).unlink(missing_ok=True)
    for p in folder.glob("*.h5"):
        p.unlink()


def _compute(world: distributed.World, folder: Path, clf: Any, source: DataSource,
             parsed: list[Any], options: dict[str, Any], pending: list[shards.Range],
             batch_size: int, target: str | int, dtype: str, digest: str,
             workers: int | None, progress: bool, stems: dict[str, str],
             assembly: layout.Assembly | None, concepts: list[str]) -> None:
    from lumos.experiments import methods as mt

    run = len((read_manifest(folder) or {}).get("runs", [])) or 1
    model = clf.model.to(world.device)
    domain = mt.Domain(clf.domain.low.to(world.device), clf.domain.high.to(world.device))
    explainers: dict[str, ExplainFn] = {
        m.key: AttributeOnly(m.key, model, domain.low, domain.high, concepts)
        if m.kind == "lrp"
        else mt.build(m, model, domain, options[m.key]) for m in parsed}
    cpus = max(1, (os.cpu_count() or 1) // world.size)  # this rank's share of the cores
    if workers is None:
        from lumos.store.sources import TensorItems

        workers = default_workers(isinstance(source.dataset, TensorItems), world.device, cpus)
    work = Work(folder=folder, mine=shards.deal(pending, world.rank, world.size),
                batch_size=batch_size, target=target, dtype=DTYPES[dtype],
                stems=stems, attrs={keyed.HASH_KEY: digest, "run": run, "rank": world.rank},
                device=world.device, workers=workers, progress=progress and world.is_main,
                describe=source.describe, assembly=assembly,
                overlap=overlap_io(world.device, cpus))
    if work.mine:
        run_rank(work, model, source.dataset, explainers, len(clf.classes))


def default_workers(in_memory: bool, device: torch.device, cpus: int) -> int:
    """Loader worker processes per rank: none for in-memory data; on a GPU up to 4 (one core
    left to the main process); on CPU one once a rank has 4 cores, else none (the explanation
    itself runs on every core, and a worker decoding beside it slows it more than decoding in
    turn costs)."""
    if in_memory:
        return 0
    if device.type != "cpu":
        return min(4, max(1, cpus - 1))
    return 1 if cpus >= 4 else 0


def _finish(folder: Path, settings: dict[str, Any], digest: str, todo: list[shards.Range],
            stems: dict[str, str], assembly: layout.Assembly) -> None:
    """Rank 0: complete the final files from the finished shards and the manifest."""
    manifest = read_manifest(folder) or {}
    if manifest.get("complete"):
        return
    done = shards.finished(folder, digest)
    missing = [r for r in todo if r not in done]
    if missing:
        raise UserError(f"{len(missing)} shard(s) are missing after the run (first: "
                        f"{missing[0][0]}-{missing[0][1]}); rerun the same command")
    assembly.finish(todo, lambda rng: shards.path(folder, rng))
    records = [shards.record(done[r]) for r in todo]
    seconds = {k: sum(r["seconds"].get(k, 0.0) for r in records) for k in stems}
    elapsed = time.time() - float(manifest.get("started_unix", time.time()))
    computed = sum(r["stop"] - r["start"] for r in records if r["run"] == len(
        manifest.get("runs", [])))
    keyed.write_record(folder / layout.MANIFEST, {
        **manifest, **settings, keyed.HASH_KEY: digest, "complete": True,
        "shards_done": len(todo), "shards": records,
        "methods": {k: {"file": f"{stems[k]}.h5", "options": settings["methods"][k],
                        "seconds": round(seconds[k], 3),
                        **({"concepts": settings["concepts"]} if "concepts" in settings
                           and k.startswith("lrp:") else {})} for k in stems},
        "predict_seconds": round(sum(r["seconds"].get(PREDICT, 0.0) for r in records), 3),
        "images_resized": sum(r["images_resized"] for r in records),
        "last_run_seconds": round(elapsed, 3),
        "images_per_second": round(computed / elapsed, 4) if elapsed > 0 else None})
    shutil.rmtree(folder / layout.SHARDS, ignore_errors=True)
