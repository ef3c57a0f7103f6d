"""A small dependency-free progress bar on stderr, for downloads, training and metrics.

On a terminal the bar redraws in place (at most ten times a second); elsewhere (a log file, CI)
it writes a single summary line when it closes, so logs stay readable. :meth:`Progress.write`
adds a line of its own (one per training epoch) in both cases.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

_BAR_WIDTH = 24


def _human(n: float, binary: bool) -> str:
    """``n`` as a short string; bytes with binary prefixes when ``binary``."""
    if not binary:
        return f"{n:.0f}" if float(n).is_integer() else f"{n:.2f}"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}GiB"  # pragma: no cover - loop always returns


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


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
    """

    def __init__(self, total: int | None, desc: str = "", *, enabled: bool = True,
                 bytes: bool = False, initial: int = 0, stream: TextIO | None = None) -> None:
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self.binary = bytes
        self.n = initial
        self._initial = initial
        self.postfix = ""
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._closed = False

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        """Advance by ``n`` steps and optionally replace the text after the bar."""
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        now = time.perf_counter()
        if self.enabled and self._tty and now - self._last_draw >= 0.1:
            self._last_draw = now
            self._stream.write("\r" + self.line())
            self._stream.flush()

    def write(self, text: str) -> None:
        """Print ``text`` as its own line above the bar (e.g. one summary per epoch)."""
        if not self.enabled:
            return
        if self._tty:
            self._stream.write("\r\x1b[2K" + text + "\n" + self.line())
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def line(self) -> str:
        """The current state as one line of text, without newline."""
        elapsed = time.perf_counter() - self._start
        rate = (self.n - self._initial) / elapsed if elapsed > 0 else 0.0
        count = f"{_human(self.n, self.binary)}"
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            frac = min(max(self.n / self.total, 0.0), 1.0)
            filled = round(frac * _BAR_WIDTH)
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            left = (self.total - self.n) / rate if rate > 0 else 0.0
            text = (f"{head}{frac:4.0%} [{bar}] {count}/{_human(self.total, self.binary)} "
                    f"[{_clock(elapsed)}<{_clock(left)}, {_human(rate, self.binary)}/s]")
        else:
            text = f"{head}{count} [{_clock(elapsed)}, {_human(rate, self.binary)}/s]"
        return f"{text} {self.postfix}".rstrip()

    def close(self) -> None:
        """Finish the bar with a newline (or the single summary line off a terminal)."""
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._stream.write(("\r" if self._tty else "") + self.line() + "\n")
            self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
