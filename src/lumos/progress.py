"""Progress bars for downloads, training, explaining and measuring, drawn by tqdm.

Where the bar goes depends on where the output goes:

- on a terminal, a ``tqdm`` bar redraws in place;
- in a Jupyter notebook (with ``ipywidgets`` installed), ``tqdm.auto`` draws a widget;
- anywhere else (a log file, CI, a pipe, a notebook without widgets) nothing is drawn while the
  work runs, and one summary line is written when it ends, so logs stay readable.

:meth:`Progress.write` adds a line of its own (one per training epoch) in every case.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, TextIO


def in_notebook() -> bool:
    """True inside a Jupyter kernel that can show ``ipywidgets`` (``tqdm.auto`` draws a widget)."""
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class Progress:
    """Progress of a job with ``total`` steps (or bytes, with ``bytes=True``).

    Parameters
    ----------
    total:
        Number of steps, or ``None`` when unknown (then only the count and rate show).
    desc:
        Short label in front of the bar.
    enabled:
        ``False`` makes every method a no-op (``--quiet``).
    bytes:
        Show counts as KiB/MiB and the rate per second in bytes.
    initial:
        Steps already done (a resumed download or training run).
    stream:
        Where to write; ``sys.stderr`` by default.
    summary:
        Off a terminal, write one line with the final state when the bar closes (the default);
        ``False`` for bars whose caller prints its own summary.
    """

    def __init__(self, total: int | None, desc: str = "", *, enabled: bool = True,
                 bytes: bool = False, initial: int = 0, stream: TextIO | None = None,
                 summary: bool = True) -> None:
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self.binary = bytes
        self.n = initial
        self.postfix = ""
        self.summary = summary
        self._initial = initial
        self._stream = stream if stream is not None else sys.stderr
        self._start = time.perf_counter()
        self._closed = False
        self._bar: Any = None
        if enabled and (in_notebook() or _isatty(self._stream)):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc or None, initial=initial,
                             file=self._stream, dynamic_ncols=True, **self._units())

    def _units(self) -> dict[str, Any]:
        if self.binary:
            return {"unit": "B", "unit_scale": True, "unit_divisor": 1024}
        return {"unit": "it"}

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        """Advance by ``n`` steps and optionally replace the text after the bar."""
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        if self._bar is not None:
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(n)

    def write(self, text: str) -> None:
        """Print ``text`` as its own line above the bar (e.g. one summary per epoch)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self._stream)
        else:
            self._stream.write(text + "\n")
            self._stream.flush()

    def line(self) -> str:
        """The current state as one line of text, without newline (tqdm's format, ASCII)."""
        from tqdm import tqdm

        elapsed = time.perf_counter() - self._start
        rate = (self.n - self._initial) / elapsed if elapsed > 0 else None
        return tqdm.format_meter(self.n, self.total, elapsed, prefix=self.desc,
                                 ascii=True, postfix=self.postfix or None, rate=rate,
                                 initial=self._initial, **self._units())

    def close(self) -> None:
        """Finish the bar (or, off a terminal, write the single summary line)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.summary:
            self._stream.write(self.line() + "\n")
            self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())
