"""The work of one rank: load its shards' batches, explain them, write finished shards.

With a core to spare (or on a GPU) decoding and HDF5 I/O run on background threads, beside the
explanation; when the explanation's threads take every core (a CPU run with as many torch
threads as cores) they run in turn instead: a thread beside them slows every parallel kernel
by more than its own work costs (ResNet-18 LRP on 2 cores: 642 ms per batch of 8 with the
threads, 549 ms without, against 548 ms in a bare loop; 0.79x against 0.89x of the bare loop's
images/s end to end).

Batches never straddle a shard boundary, so a sample lands in the same batch whichever rank
computes its shard and however often the run was interrupted: the stored numbers do not depend
on the number of processes or on resuming.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Sampler

from lumos.errors import UserError
from lumos.explanation import Explanation
from lumos.progress import Progress
from lumos.store import layout, shards
from lumos.store.concepts import Attributed, ConceptStatistics
from lumos.store.shards import Range

#: ``(x, target) -> Explanation``, or ``-> Tensor`` for an attribution-only method (LRP here,
#: :class:`AttributeOnly`, whose own forward pass also gives the prediction): the store then
#: adds ``f_target(x)`` from the model's output and the conservation gap.
ExplainFn = Callable[[Tensor, Any], "Explanation | Tensor | Attributed"]
_UNREADABLE = 2
#: Key of the model's own forward pass (prediction and target) in a shard's timing.
PREDICT = "(predict)"
_RESIZED = 1


@dataclass
class Work:
    """What one rank computes and how (everything but the data and the model)."""

    folder: Path
    mine: list[Range]
    batch_size: int
    target: str | int
    dtype: np.dtype
    stems: dict[str, str]
    attrs: dict[str, Any]
    device: torch.device
    workers: int
    progress: bool
    describe: Callable[[int], str] = field(default=lambda i: f"sample {i}")
    #: Decode and write on background threads, beside the explanation (:func:`overlap_io`).
    overlap: bool = True
    #: Rank 0's final files, filled as its shards finish (:class:`layout.Assembly`).
    assembly: layout.Assembly | None = None


class ShardBatches(Sampler[list[int]]):
    """Index batches of ``batch_size`` that restart at every shard's start."""

    def __init__(self, mine: Sequence[Range], batch_size: int) -> None:
        self.batches = [list(range(a, min(a + batch_size, stop)))
                        for start, stop in mine for a in range(start, stop, batch_size)]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def overlap_io(device: torch.device, cpus: int) -> bool:
    """Whether a rank decodes and writes on background threads: on a GPU, or on a CPU where
    the rank's share of the cores (``cpus``) is more than its torch threads."""
    return device.type != "cpu" or cpus > torch.get_num_threads()


class ShardWriter:
    """Writes finished shards and adds each to ``assembly`` (the final files) when given: on a
    background thread, at most two waiting in memory, or with ``background=False`` at once, in
    :meth:`submit`."""

    def __init__(self, assembly: layout.Assembly | None = None, background: bool = True) -> None:
        self._assembly = assembly
        self._queue: queue.Queue[tuple[Path, dict[str, Any], dict[str, Any]] | None] = \
            queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._loop, name="lumos-shard-writer",
                                            daemon=True)
            self._thread.start()

    def submit(self, path: Path, groups: dict[str, Any], attrs: dict[str, Any]) -> None:
        """Queue a shard (blocks while two are waiting), or write it now without a thread;
        re-raises an earlier write error."""
        self._check()
        if self._thread is None:
            self._write((path, groups, attrs))
        else:
            self._queue.put((path, groups, attrs))

    def close(self) -> None:
        """Wait for every queued shard to be on disk; re-raises a write error."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        self._check()

    def _write(self, item: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
        layout.write_shard(*item)
        if self._assembly is not None:
            _, groups, attrs = item
            self._assembly.add((int(attrs["start"]), int(attrs["stop"])), groups)

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as err:  # surfaced on the next submit / close
                    self._error = err


def run_rank(work: Work, model: nn.Module, dataset: Any, explainers: dict[str, ExplainFn],
             n_classes: int) -> int:
    """Compute and write this rank's shards; returns the number of samples explained."""
    loader = DataLoader(dataset, batch_sampler=ShardBatches(work.mine, work.batch_size),
                        num_workers=work.workers, pin_memory=work.device.type == "cuda")
    total = sum(b - a for a, b in work.mine)
    writer = ShardWriter(work.assembly, background=work.overlap)
    bar = Progress(total, "explain-dataset", enabled=work.progress)
    bounds = iter(work.mine)
    current = _Shard(next(bounds, (0, 0)), list(explainers))
    batches = Prefetched(loader) if work.workers == 0 and work.overlap else None
    try:
        for x, y, status in batches if batches is not None else loader:
            rows = np.arange(current.at, current.at + len(x))
            _check_status(status, rows, work.describe)
            x = x.to(work.device, non_blocking=True)
            extras: dict[str, dict[str, Tensor]] = {}
            current.add(x, y, rows, _explain_batch(model, x, y, work, explainers, n_classes,
                                                   current.seconds, extras), work.dtype, extras)
            current.resized += int((status == _RESIZED).sum())
            bar.update(len(x))
            if current.at == current.rng[1]:
                writer.submit(shards.path(work.folder, current.rng),
                              current.groups(work.stems), current.attrs(work.attrs))
                current = _Shard(next(bounds, (0, 0)), list(explainers))
    finally:
        if batches is not None:
            batches.close()
        bar.close()
        writer.close()
    return total


class Prefetched:
    """Iterates ``source`` on a background thread, at most ``depth`` items ahead.

    Without loader processes (and with a core to spare, :func:`overlap_io`) the next batch is
    decoded (PIL and torch release the GIL) while the current one is explained. An error of
    ``source`` is raised where its item would have been.
    """

    _END = object()

    def __init__(self, source: Any, depth: int = 2) -> None:
        self._queue: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(source,),
                                        name="lumos-prefetch", daemon=True)
        self._thread.start()

    def _fill(self, source: Any) -> None:
        try:
            for item in source:
                if not self._put((True, item)):
                    return
        except BaseException as err:  # re-raised in the consumer
            self._put((False, err))
            return
        self._put((True, self._END))

    def _put(self, item: tuple[bool, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            ok, item = self._queue.get()
            if not ok:
                raise item
            if item is self._END:
                return
            yield item

    def close(self) -> None:
        """Stop the thread (also when the consumer stopped early) and wait for it."""
        self._stop.set()
        self._thread.join()


def _check_status(status: Tensor, rows: np.ndarray, describe: Callable[[int], str]) -> None:
    bad = (status == _UNREADABLE).nonzero()
    if len(bad):
        i = int(rows[int(bad[0])])
        raise UserError(f"cannot read image {describe(i)} (dataset position {i}): not a valid "
                        "image file; replace it and rerun the same command (finished shards "
                        "are kept)")


def _explain_batch(model: nn.Module, x: Tensor, y: Tensor, work: Work,
                   explainers: dict[str, ExplainFn], n_classes: int,
                   seconds: dict[str, float], extras: dict[str, dict[str, Tensor]] | None = None,
                   ) -> tuple[Tensor, dict[str, Explanation]]:
    """Logits and each method's explanation of one batch; ``extras`` (when given) receives
    the further per-sample arrays of methods that have some (concept statistics)."""
    raw: dict[str, Explanation | Tensor | Attributed] = {}
    first = next((k for k, fn in explainers.items() if isinstance(fn, AttributeOnly)), None)
    if first is not None:  # LRP's own forward pass gives the prediction: no extra forward
        pick = Pick(work.target, y, n_classes)
        raw[first] = _timed(first, explainers[first], x, pick, seconds)
        logits, target = pick.output, pick.classes
    else:
        begin = time.perf_counter()
        with torch.no_grad():
            logits = model(x)
        target = _targets(work.target, logits, y, n_classes).to(x.device)
        seconds[PREDICT] += time.perf_counter() - begin
    for key, fn in explainers.items():
        if key not in raw:
            raw[key] = _timed(key, fn, x, target, seconds)
    score = logits.gather(1, target[:, None])[:, 0]
    if extras is not None:
        extras.update({key: r.extra for key, r in raw.items() if isinstance(r, Attributed)})
    return logits, {key: _completed(key, raw[key], score, target) for key in explainers}


def _completed(key: str, result: Explanation | Tensor | Attributed, score: Tensor,
               target: Tensor) -> Explanation:
    """An attribution-only result with the target's score and the conservation gap added."""
    if isinstance(result, Explanation):
        return result
    if isinstance(result, Attributed):
        result = result.attribution
    return Explanation(attribution=result, output=score, method=key, target=target,
                       delta=result.flatten(1).sum(1) - score)


def _timed(key: str, fn: ExplainFn, x: Tensor, target: Tensor | Pick,
           seconds: dict[str, float]) -> Explanation | Tensor | Attributed:
    begin = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-sample convergence is stored, not warned
        result = _fitted(fn, x, target)
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)
    seconds[key] += time.perf_counter() - begin
    return result.detach()


def _targets(target: str | int, logits: Tensor, y: Tensor, n_classes: int) -> Tensor:
    if target == "predicted":
        return logits.argmax(1)
    if target == "label":
        return y.long()
    return torch.full((len(logits),), int(target), dtype=torch.long)


class Pick:
    """A callable LRP target that picks the class from the output of LRP's own forward pass
    (``predicted``, ``label`` or a fixed class) and keeps that output as the prediction."""

    def __init__(self, target: str | int, y: Tensor, n_classes: int) -> None:
        self.target, self.y, self.n_classes = target, y, n_classes
        self.output = torch.empty(0)
        self.classes = torch.empty(0, dtype=torch.long)

    def __call__(self, output: Tensor) -> Tensor:
        if output.dim() != 2 or output.shape[1] != self.n_classes:
            raise UserError(f"the model returns shape {tuple(output.shape)}, expected "
                            f"(batch, {self.n_classes}) for its {self.n_classes} classes")
        self.output = output.detach()
        self.classes = _targets(self.target, self.output, self.y,
                                self.n_classes).to(output.device)
        return output.gather(1, self.classes[:, None])[:, 0]

    def part(self, rows: slice) -> Pick:
        """The same choice for the samples ``rows``."""
        return Pick(self.target, self.y[rows], self.n_classes)

    def join(self, parts: list[Pick]) -> None:
        """Take the outputs and classes of ``parts`` (in order) as this batch's."""
        self.output = torch.cat([p.output for p in parts])
        self.classes = torch.cat([p.classes for p in parts])


class AttributeOnly:
    """``lumos.LRP(model, composite).attribute`` for ``lrp:COMPOSITE`` (no per-layer report);
    the target may be a :class:`Pick`. With ``concepts`` (layer names) it returns an
    :class:`~lumos.store.concepts.Attributed`: the heatmap and those layers' concept
    statistics from the same pass."""

    def __init__(self, key: str, model: nn.Module, low: Tensor, high: Tensor,
                 concepts: Sequence[str] = ()) -> None:
        from lumos.experiments.methods import composite as make
        from lumos.lrp.engine import LRP

        composite = make(key, low, high)
        self.lrp = LRP(model, composite=composite)
        self.concepts = ConceptStatistics(model, composite, concepts) if concepts else None

    def __call__(self, x: Tensor, target: Tensor | Pick) -> Tensor | Attributed:
        if self.concepts is not None:
            return self.concepts(x, target)
        return self.lrp.attribute(x, target=target)


def _fitted(fn: ExplainFn, x: Tensor, t: Tensor | Pick) -> Explanation | Tensor | Attributed:
    """``fn(x, t)``, halving the batch on a CUDA out-of-memory error until it fits."""
    try:
        return fn(x, t)
    except torch.cuda.OutOfMemoryError:
        if len(x) == 1:
            raise
        torch.cuda.empty_cache()
        h = len(x) // 2
        rows = [slice(None, h), slice(h, None)]
        picks: list[Any] = [t.part(r) if isinstance(t, Pick) else t[r] for r in rows]
        parts = [_fitted(fn, x[r], p).detach() for r, p in zip(rows, picks, strict=True)]
        if isinstance(t, Pick):
            t.join(picks)
        if isinstance(parts[0], Tensor):
            return torch.cat(parts)  # type: ignore[arg-type]
        if isinstance(parts[0], Attributed):
            return Attributed.cat(parts)  # type: ignore[arg-type]
        return _concat(parts)  # type: ignore[arg-type]


def _concat(parts: list[Explanation]) -> Explanation:
    fields = ("attribution", "output", "target", "delta", "baseline_output", "n_steps",
              "converged", "error")
    joined: dict[str, Any] = {f: torch.cat([getattr(p, f) for p in parts]) for f in fields
                              if getattr(parts[0], f) is not None}
    return Explanation(method=parts[0].method, **joined)


class _Shard:
    """The growing arrays of the shard being computed."""

    def __init__(self, rng: Range, keys: list[str]) -> None:
        self.rng, self.at = rng, rng[0]
        self.seconds = dict.fromkeys([PREDICT, *keys], 0.0)
        self.resized = 0
        self.parts: dict[str, list[np.ndarray]] = {}

    def _put(self, name: str, value: Tensor | np.ndarray) -> None:
        array = value.detach().cpu().numpy() if isinstance(value, Tensor) else value
        self.parts.setdefault(name, []).append(array)

    def add(self, x: Tensor, y: Tensor, rows: np.ndarray,
            result: tuple[Tensor, dict[str, Explanation]], dtype: np.dtype,
            extras: dict[str, dict[str, Tensor]] | None = None) -> None:
        logits, exps = result
        for key, arrays in (extras or {}).items():
            for name, value in arrays.items():
                self._put(f"{key}/{name}", value.float())
        self._put("input/data", x.float())
        self._put("label", y.numpy().astype(np.uint32))
        self._put("index", rows.astype(np.uint32))
        self._put("prediction", logits.float())
        for key, exp in exps.items():
            self._put(f"{key}/attribution", exp.attribution.cpu().numpy().astype(dtype, copy=False))
            for f in layout.CHECK_FIELDS:
                value = getattr(exp, f)
                if value is not None:
                    self._put(f"{key}/{f}", value.float() if value.is_floating_point()
                              else value)
        self.at += len(x)

    def groups(self, stems: dict[str, str]) -> dict[str, dict[str, np.ndarray]]:
        cat = {k: np.concatenate(v) for k, v in self.parts.items()}
        common = {"index": cat["index"], "label": cat["label"], "prediction": cat["prediction"]}
        out = {layout.INPUT: {"data": cat["input/data"], "label": cat["label"],
                              "index": cat["index"]}}
        for key, stem in stems.items():
            own = {k.split("/", 1)[1]: v for k, v in cat.items() if k.startswith(f"{key}/")}
            out[stem] = {"index": common["index"], "attribution": own.pop("attribution"),
                         "label": common["label"], "prediction": common["prediction"], **own}
        return out

    def attrs(self, common: dict[str, Any]) -> dict[str, Any]:
        return {**common, "start": self.rng[0], "stop": self.rng[1],
                "seconds": json.dumps(self.seconds), "images_resized": self.resized}
