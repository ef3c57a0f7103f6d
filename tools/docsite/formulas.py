"""LaTeX in the pages, turned into MathML when the site is built.

``$...$`` (inline) and ``$$ ... $$`` (display, on lines of their own) become ``<math>``
elements that browsers render natively, so the site needs no script and no network to show
formulas. Code blocks and inline code are left alone.
"""

from __future__ import annotations

import re

from docsite.fences import code_spans

DISPLAY = re.compile(r"^[ \t]*\$\$[ \t]*\n(?P<tex>.*?)\n[ \t]*\$\$[ \t]*$",
                     re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"(?<![\\$\w])\$(?=\S)(?P<tex>[^$\n]+?)(?<=\S)\$(?![\w$])")


class MathError(ValueError):
    """A formula that latex2mathml cannot read."""


def to_mathml(tex: str, display: bool) -> str:
    """One formula as a MathML element."""
    from latex2mathml.converter import convert

    try:
        return convert(tex.strip(), display="block" if display else "inline")
    except Exception as err:  # latex2mathml raises many exception types for bad input
        raise MathError(f"cannot convert formula {tex.strip()!r}: {err}") from err


def _outside_code(text: str, pattern: re.Pattern[str], display: bool) -> str:
    spans = code_spans(text)
    out, last = [], 0
    for m in pattern.finditer(text):
        if any(a <= m.start() < b for a, b in spans):
            continue
        out.append(text[last:m.start()])
        math = to_mathml(m.group("tex"), display)
        out.append(f"\n<div class=\"math\">{math}</div>\n" if display else math)
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def render(markdown: str) -> str:
    """``markdown`` with its formulas converted; pages without ``$`` come back unchanged."""
    if "$" not in markdown:
        return markdown
    markdown = _outside_code(markdown, DISPLAY, True)
    return _outside_code(markdown, INLINE, False)
