"""Sweep LRP over the models users load: every timm architecture, Hugging Face settings, the API.

Usage::

    .venv/bin/python bench/model_sweep.py [--family timm hf api] [--per-module N]
                                          [--only NAME ...] [--timm-names NAME ...]
                                          [--timeout S]

Families (cases in :mod:`_sweep_cases`):

``timm``
    For each architecture module of ``timm.list_modules()``, its smallest models (by parameter
    count, built on the meta device; ``--per-module``, 1 by default), random weights, built
    small where the model accepts it (``img_size``, one block per stage), input 32-64 px where
    the model runs on it, else its default size.
``hf``
    Hugging Face image classifiers (the small configs of ``tests/lrp/hf_models.py``) in the
    settings users hit: ``attn_implementation`` eager / sdpa, batch 1 and 3, non-square input,
    one input channel, ``return_dict=False``, and an ``AutoModel`` backbone with a head the
    user wrote around it.
``api``
    lumos's own API on torchvision and timm models: a second call at another input size, batch
    1 and 5, target as int / list / tensor, channels-last and float64 input.

Each case runs three checks (``tests/lrp/conservation.py``): ``explain`` (EpsilonPlus in
float32 on calibrated BatchNorm statistics gives a finite map that is not all zero),
``conserve`` (float64, biases and running means zeroed, ``CPLRP(epsilon=1e-9)``: input plus
sinks equal the output to 1e-5 relative) and ``untouched`` (the model is identical after each
call, also when it raises). A case whose model does not build or run by itself is ``skip``.

Cases run in a worker process, one at a time, each under ``--timeout`` seconds (a hang kills
the worker, which restarts). One line per case: ``pass`` or the failing check and the error's
first line; then a summary per family.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent),
                str(Path(__file__).resolve().parents[1] / "tests")]


def _worker(conn: Any, threads: int) -> None:
    import torch

    import _sweep_cases as cases

    torch.set_num_threads(threads)
    while True:
        job = conn.recv()
        if job is None:
            return
        family, name = job
        conn.send(cases.run_case(family, name))


class _Pool:
    """One worker process; a case past its time kills it, and the next case starts a new one."""

    def __init__(self, threads: int) -> None:
        self._ctx = mp.get_context("spawn")
        self._threads = threads
        self._proc: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        self._conn, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_worker, args=(child, self._threads), daemon=True)
        self._proc.start()

    def run(self, family: str, name: str, timeout: float) -> tuple[str, str]:
        if self._proc is None or not self._proc.is_alive():
            self._start()
        self._conn.send((family, name))
        if self._conn.poll(timeout):
            try:
                return self._conn.recv()
            except EOFError:
                pass
            self.stop()
            return "crash", "the worker died (out of memory or a native crash)"
        self.stop()
        return "timeout", f"no result within {timeout:.0f} s"

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
            self._proc = None

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._conn.send(None)
            self._proc.join(10)
        self.stop()


def main() -> None:
    import _sweep_cases as cases

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", nargs="+", default=["timm", "hf", "api"],
                        choices=["timm", "hf", "api"])
    parser.add_argument("--per-module", type=int, default=1,
                        help="timm models per architecture module (smallest first)")
    parser.add_argument("--only", nargs="+", default=None, help="run these case names only")
    parser.add_argument("--timm-names", nargs="+", default=None,
                        help="timm model names to run instead of the per-module selection")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per case")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the worker")
    args = parser.parse_args()

    import torch

    print(f"torch {torch.__version__}, threads {args.threads}, timeout {args.timeout:.0f} s",
          flush=True)
    pool = _Pool(args.threads)
    try:
        for family in args.family:
            names = args.timm_names if family == "timm" and args.timm_names else \
                cases.case_names(family, args.per_module)
            if args.only:
                names = [n for n in names if n in args.only]
            print(f"== {family}: {len(names)} cases", flush=True)
            tally: Counter[str] = Counter()
            start = time.perf_counter()
            for name in names:
                t0 = time.perf_counter()
                verdict, detail = pool.run(family, name, args.timeout)
                tally[verdict] += 1
                print(f"{family:4s} {name:48s} {verdict:9s} {time.perf_counter() - t0:6.1f}s "
                      f"{detail}", flush=True)
            ran = sum(tally.values()) - tally["skip"]
            print(f"== {family} summary: {tally['pass']}/{ran} pass (skipped {tally['skip']}: "
                  f"the model itself does not build or run); "
                  + ", ".join(f"{k} {v}" for k, v in sorted(tally.items()))
                  + f"; {time.perf_counter() - start:.0f} s", flush=True)
    finally:
        pool.close()


if __name__ == "__main__":
    main()
