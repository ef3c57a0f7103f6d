"""Printed output against the output a page shows.

The rules, as docs/contributing.md states them:

- lines are compared after collapsing runs of spaces (tables may realign) and dropping blank
  lines and trailing spaces;
- a line that is only ``...`` stands for any number of lines; ``...`` inside a line for any text
  (timings, paths of temporary folders);
- every number must be within ``rtol`` (default 1%) of the shown one, or within half a unit of
  its last shown digit, whichever is larger: ``0.1356`` accepts 0.1343 to 0.1370, ``51``
  accepts only 51, ``1,024`` is read as the numbers 1 and 24;
- everything else must match exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

RTOL = 0.01
ELLIPSIS = "..."
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|\d+(?:\.\d+)?")
_ANY_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


@dataclass(frozen=True)
class Mismatch:
    """Why an output does not match: the first line that differs, or a number out of range."""

    expected: str
    actual: str
    reason: str

    def __str__(self) -> str:
        return f"{self.reason}\n  shown:   {self.expected}\n  printed: {self.actual}"


def _normal(text: str) -> list[str]:
    lines = [" ".join(line.split()) for line in text.replace("\r\n", "\n").split("\n")]
    return [line for line in lines if line]


def allowance(shown: str, rtol: float) -> float:
    """How far a printed number may be from ``shown``."""
    value = Decimal(shown.lstrip("+"))
    exponent = value.as_tuple().exponent
    half_unit = 0.5 * 10.0 ** int(exponent) if isinstance(exponent, int) else 0.0
    return max(rtol * abs(float(value)), half_unit)


@cache
def _pattern(line: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A regex for one shown line, with one group per number, and the shown numbers."""
    pieces, numbers = [], []
    for k, part in enumerate(line.split(ELLIPSIS)):
        if k:
            pieces.append(".*?")
        last = 0
        for m in NUMBER.finditer(part):
            pieces.append(re.escape(part[last:m.start()]))
            pieces.append(_ANY_NUMBER)
            numbers.append(m.group())
            last = m.end()
        pieces.append(re.escape(part[last:]))
    return re.compile("".join(pieces)), tuple(numbers)


def line_mismatch(shown: str, printed: str, rtol: float) -> str | None:
    """``None`` when ``printed`` matches the shown line, else the reason."""
    pattern, numbers = _pattern(shown)
    m = pattern.fullmatch(printed)
    if m is None:
        return "the text differs"
    for want, got in zip(numbers, m.groups(), strict=True):
        if abs(float(got) - float(want)) > allowance(want, rtol):
            return (f"printed {got} where the page shows {want} (allowed: ±"
                    f"{allowance(want, rtol):.3g})")
    return None


def mismatch(shown: str, printed: str, rtol: float = RTOL) -> Mismatch | None:
    """``None`` when ``printed`` matches ``shown`` under the rules above, else the first problem."""
    want, got = _normal(shown), _normal(printed)
    best: list[Mismatch] = []

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(want):
            if j == len(got):
                return True
            best.append(Mismatch("(end of the shown output)", got[j], "more lines printed"))
            return False
        if want[i] == ELLIPSIS:
            return any(match(i + 1, k) for k in range(j, len(got) + 1))
        if j == len(got):
            best.append(Mismatch(want[i], "(end of the output)", "fewer lines printed"))
            return False
        reason = line_mismatch(want[i], got[j], rtol)
        if reason is not None:
            best.append(Mismatch(want[i], got[j], reason))
            return False
        return match(i + 1, j + 1)

    if match(0, 0):
        return None
    numeric = [b for b in best if b.reason.startswith("printed")]
    return (numeric or best)[0]
