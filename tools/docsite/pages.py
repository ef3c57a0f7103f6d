"""Run a page's code blocks in order, as a reader would, and check what they print.

All blocks of a page run in one temporary folder: ``python`` blocks in one namespace (a later
block sees an earlier block's names), ``console`` commands and ``bash`` scripts in a shell whose
``PATH`` starts with this Python's ``bin`` folder (so ``lumos`` and ``python`` are the ones under
test). A block with a ``title="NAME"`` that is not run (a config file) is written to NAME first.

``python -m docsite.pages PAGE...`` runs pages from the command line; ``--update`` writes what
the blocks print into the page's output blocks (review the diff before committing it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from docsite import compare
from docsite.fences import RUNNABLE, Block, page_blocks

TIMEOUT = 600
TITLE = re.compile(r'title="(?P<name>[^"]+)"')
SENTINEL = "@@lumos-docs-command-done@@"


class PageError(AssertionError):
    """A block raised, exited non-zero, or printed something other than the page shows."""


@dataclass
class Outcome:
    """What one block printed (python) or each command printed (console)."""

    block: Block
    printed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _fail(path: Path, block: Block, message: str) -> PageError:
    return PageError(f"{path}:{block.line}: {block.lang} block: {message}")


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MPLBACKEND", "Agg")
    env.pop("COLUMNS", None)
    return env


def _shell(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in a process group of its own; on timeout the whole group is killed."""
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=_env(), stdin=subprocess.DEVNULL, start_new_session=True) as proc:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(args, proc.returncode, out)


def run_python(block: Block, namespace: dict[str, object]) -> str:
    """Execute ``block`` in ``namespace``; what it printed on stdout."""
    out = io.StringIO()
    code = compile(block.text, f"<{block.lang} block at line {block.line}>", "exec")
    with contextlib.redirect_stdout(out):
        exec(code, namespace)
    return out.getvalue()


def commands(block: Block) -> list[tuple[str, str]]:
    """A console block's ``$`` commands (continuation lines joined) and the output each shows."""
    out: list[tuple[str, str]] = []
    lines = block.text.rstrip("\n").split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise ValueError(f"line {block.line + 1 + i} of a console block is not a command "
                             "and follows no command")
        command = lines[i][2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        i += 1
        shown = []
        while i < len(lines) and not lines[i].startswith("$ "):
            shown.append(lines[i])
            i += 1
        out.append((command, "\n".join(shown)))
    return out


def run_console(block: Block, timeout: float) -> list[str]:
    """Run each command in one bash (``$?`` carries over); what each printed, stderr merged.

    A command that exits non-zero fails the block unless the next command is ``echo $?``.
    """
    pairs = commands(block)
    script = ["set +e"]
    for command, _ in pairs:
        script += [command, f'__rc=$?; printf "\\n{SENTINEL} %d\\n" "$__rc"; (exit $__rc)']
    proc = _shell(["bash", "-c", "\n".join(script)], timeout)
    chunks = proc.stdout.split(SENTINEL)
    printed = []
    for k, chunk in enumerate(chunks[:-1]):
        text = chunk if k == 0 else chunk.split("\n", 1)[1] if "\n" in chunk else ""
        printed.append(text)
    codes = [int(c.split("\n", 1)[0]) for c in chunks[1:]]
    if len(codes) < len(pairs):
        raise RuntimeError(f"the shell stopped after {len(codes)} of {len(pairs)} commands:\n"
                           f"{proc.stdout[-2000:]}")
    for k, ((command, _), code) in enumerate(zip(pairs, codes, strict=True)):
        allowed = k + 1 < len(pairs) and pairs[k + 1][0].strip() == "echo $?"
        if code and not allowed:
            raise RuntimeError(f"`{command}` exited with {code}:\n{printed[k][-3000:]}")
    return printed


def run_bash(block: Block, timeout: float) -> str:
    """Run a bash/sh block as one script that must succeed; what it printed."""
    proc = _shell(["bash", "-euo", "pipefail", "-c", block.text], timeout)
    if proc.returncode:
        raise RuntimeError(f"the script exited with {proc.returncode}:\n{proc.stdout[-3000:]}")
    return proc.stdout


def _write_files(blocks: list[Block], folder: Path) -> None:
    for block in blocks:
        title = TITLE.search(block.info)
        if block.lang not in RUNNABLE and title:
            target = folder / title.group("name")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text, encoding="utf-8")


def run_page(path: Path, *, until: int | None = None, check: bool = True) -> list[Outcome]:
    """Run the page's blocks (up to the one on line ``until``) and check their outputs.

    Raises
    ------
    PageError
        Naming the page, the block's line and what went wrong.
    """
    blocks = page_blocks(path)
    outcomes = []
    namespace: dict[str, object] = {"__name__": "__main__"}
    with tempfile.TemporaryDirectory(prefix=f"lumos-docs-{path.stem}-") as tmp, \
            _inside(Path(tmp)):
        _write_files(blocks, Path(tmp))
        for block in blocks:
            if until is not None and block.line > until:
                break
            if block.lang not in RUNNABLE or block.skip:
                continue
            timeout = float(block.markers.get("timeout", TIMEOUT))
            start = time.perf_counter()
            try:
                if block.lang == "python":
                    printed = [run_python(block, namespace)]
                elif block.lang == "console":
                    printed = run_console(block, timeout)
                else:
                    printed = [run_bash(block, timeout)]
            except Exception as err:
                raise _fail(path, block, f"{type(err).__name__}: {err}") from err
            outcome = Outcome(block, printed, time.perf_counter() - start)
            outcomes.append(outcome)
            if check:
                _check(path, outcome)
    return outcomes


def shown_outputs(block: Block) -> list[str | None]:
    """What the page shows each part of ``block`` printing (None: not shown, not checked)."""
    if block.lang == "console":
        return [shown for _, shown in commands(block)]
    if block.lang == "python":
        return [block.output.text if block.output is not None else None]
    return [None]


def _check(path: Path, outcome: Outcome) -> None:
    block = outcome.block
    rtol = float(block.markers.get("rtol", compare.RTOL))
    for shown, printed in zip(shown_outputs(block), outcome.printed, strict=True):
        if shown is None:
            continue
        problem = compare.mismatch(shown, printed, rtol)
        if problem is not None:
            raise _fail(path, block, f"the output differs from the page (numbers within "
                                     f"{rtol:g} relative):\n{problem}\n--- printed ---\n"
                                     f"{printed.rstrip()}")


def update(path: Path) -> int:
    """Write what each python block prints into its output block; the number of blocks changed.

    Console blocks are left alone: their shown outputs hold ``...`` for what varies.
    """
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    changed = 0
    for outcome in reversed(run_page(path, check=False)):
        out = outcome.block.output
        if outcome.block.lang != "python" or out is None:
            continue
        printed = outcome.printed[0].rstrip("\n")
        if compare.mismatch(out.text, printed) is None:
            continue
        start = out.line  # the opening fence (1-based) -> body starts at index `start`
        end = start + out.text.count("\n")
        lines[start:end] = printed.split("\n")
        changed += 1
    path.write_text("\n".join(lines), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python -m docsite.pages [--update] PAGE...``."""
    parser = argparse.ArgumentParser(prog="python -m docsite.pages", description=__doc__)
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument("--update", action="store_true",
                        help="write what python blocks print into their output blocks")
    args = parser.parse_args(argv)
    for page in args.pages:
        if args.update:
            print(f"{page}: {update(page.resolve())} output block(s) rewritten")
        else:
            outcomes = run_page(page.resolve())
            seconds = sum(o.seconds for o in outcomes)
            print(f"{page}: {len(outcomes)} block(s) ran and matched in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

