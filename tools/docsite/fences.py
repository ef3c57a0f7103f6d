"""Fenced code blocks of a markdown page, with the test markers that precede them.

Conventions (docs/contributing.md explains them to authors):

- ``python`` blocks run in order in one namespace per page; ``console`` blocks hold ``$ ``
  commands, each followed by the output it prints; ``bash``/``sh`` blocks run as scripts.
- A ``text`` block right after a ``python`` block is the output that block prints.
- A block that is not run and has ``title="NAME"`` in its info string (a config file) is
  written to NAME in the page's folder before the page runs.
- An HTML comment right before a block (blank lines allowed) adjusts it:
  ``<!-- test: skip REASON -->`` (not run; the site shows the reason),
  ``<!-- test: rtol 0.05 -->`` (another tolerance for the numbers of this block's output),
  ``<!-- test: timeout 300 -->`` (seconds; default 600).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
MARKER = re.compile(r"^[ \t]*<!--\s*test:\s*(?P<verb>[\w-]+)\s*(?P<arg>.*?)\s*-->[ \t]*$")

#: Languages whose blocks are executed.
RUNNABLE = ("python", "console", "bash", "sh")
VERBS = ("skip", "rtol", "timeout")


@dataclass
class Block:
    """One fenced block: where it is, its language, its text and its markers."""

    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    info: str = ""  # the whole info string after the fence (``toml title="tiny.toml"``)
    markers: dict[str, str] = field(default_factory=dict)
    output: Block | None = None  # the ``text`` block that shows what a python block prints

    @property
    def skip(self) -> str | None:
        """The reason this block is not run, or None."""
        return self.markers.get("skip")


class MarkupError(ValueError):
    """A page breaks the conventions (unclosed fence, unknown marker, marker without block)."""


def blocks(text: str, source: str = "<page>") -> list[Block]:
    """Every fenced block of ``text`` in order, with markers attached and outputs paired."""
    lines = text.split("\n")
    found: list[Block] = []
    pending: dict[str, str] = {}
    pending_line = 0
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i])
        if marker:
            verb, arg = marker.group("verb"), marker.group("arg")
            if verb not in VERBS:
                raise MarkupError(f"{source}:{i + 1}: unknown test marker {verb!r}; "
                                  f"use one of {', '.join(VERBS)}")
            if verb == "skip" and not arg:
                raise MarkupError(f"{source}:{i + 1}: 'test: skip' needs a reason")
            pending[verb] = arg
            pending_line = i + 1
            i += 1
            continue
        fence = FENCE.match(lines[i])
        if not fence:
            if lines[i].strip() and pending:
                raise MarkupError(f"{source}:{pending_line}: a test marker must come right "
                                  "before a fenced block")
            i += 1
            continue
        indent, mark = fence.group("indent"), fence.group("fence")
        info = fence.group("info").strip()
        lang = info.split()[0].lstrip(".{").rstrip("}").lower() if info else ""
        body, j = [], i + 1
        closing = re.compile(rf"^[ \t]*{re.escape(mark[0])}{{{len(mark)},}}[ \t]*$")
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
            j += 1
        if j == len(lines):
            raise MarkupError(f"{source}:{i + 1}: fenced block is never closed")
        found.append(Block(i + 1, lang, "\n".join(body) + ("\n" if body else ""), info,
                           pending))
        pending = {}
        i = j + 1
    if pending:
        raise MarkupError(f"{source}:{pending_line}: a test marker at the end of the page")
    _pair_outputs(found, lines)
    return found


def _pair_outputs(found: list[Block], lines: list[str]) -> None:
    """Attach each ``text`` block that follows a python block with only blank lines between."""
    for prev, nxt in itertools.pairwise(found):
        if prev.lang != "python" or nxt.lang != "text" or nxt.markers:
            continue
        end = prev.line + prev.text.count("\n") + 1  # 1-based line of prev's closing fence
        if all(not ln.strip() for ln in lines[end:nxt.line - 1]):
            prev.output = nxt


def page_blocks(path: Path) -> list[Block]:
    """The blocks of the page at ``path``."""
    return blocks(path.read_text(encoding="utf-8"), str(path))


def code_spans(text: str) -> list[tuple[int, int]]:
    """Character ranges of fenced blocks and inline code in ``text`` (to leave them alone)."""
    spans = []
    offset = 0
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if fence:
            mark = fence.group("fence")
            closing = re.compile(rf"^[ \t]*{re.escape(mark[0])}{{{len(mark)},}}[ \t]*$")
            start = offset
            j = i + 1
            offset += len(lines[i]) + 1
            while j < len(lines) and not closing.match(lines[j]):
                offset += len(lines[j]) + 1
                j += 1
            offset += len(lines[j]) + 1 if j < len(lines) else 0
            spans.append((start, offset))
            i = j + 1
            continue
        for m in re.finditer(r"(`+)(?:(?!\1).)+?\1", lines[i]):
            spans.append((offset + m.start(), offset + m.end()))
        offset += len(lines[i]) + 1
        i += 1
    return spans
