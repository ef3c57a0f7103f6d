"""A small progress bar on stderr (lumos does not depend on tqdm)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``label [#####.....] 3/10 4.2s`` redrawn in place, at most ten times a second.

    Parameters
    ----------
    total:
        Number of units of work.
    label:
        Shown before the bar.
    enabled:
        ``False`` prints nothing (``--quiet``, tests).
    stream:
        Where to draw (default ``sys.stderr``); not a terminal: one line at the end only.
    """

    def __init__(self, total: int, label: str = "", enabled: bool = True,
                 stream: TextIO | None = None, width: int = 24) -> None:
        self.total, self.label, self.enabled, self.width = max(total, 1), label, enabled, width
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.start = time.perf_counter()
        self._drawn = 0.0
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, n: int = 1, note: str = "") -> None:
        """Record ``n`` more units; ``note`` is shown after the counts."""
        self.done = min(self.done + n, self.total)
        now = time.perf_counter()
        if self.enabled and self._tty and (now - self._drawn > 0.1 or self.done == self.total):
            self._drawn = now
            self.stream.write("\r" + self.line(note))
            self.stream.flush()

    def line(self, note: str = "") -> str:
        """The bar as text."""
        filled = round(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        seconds = time.perf_counter() - self.start
        text = f"{self.label} [{bar}] {self.done}/{self.total} {seconds:.1f}s"
        return f"{text} {note}".rstrip()

    def close(self) -> None:
        """Finish the line."""
        if self.enabled:
            self.stream.write(("\r" if self._tty else "") + self.line() + "\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
