"""One self-contained HTML report from plain data structures.

A report is a list of sections; a section is a list of blocks (text, notes, key/value tables,
number tables with the best value per column marked, heatmap galleries, figures, code). Images
are embedded as ``data:`` URIs and the CSS is inline, so the file can be mailed, archived or
opened offline; a Content-Security-Policy forbids every network request. The code that computes
the study fills these structures; this module only renders them, so it can be tested with
synthetic attributions.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Literal

from PIL import Image

from lumos.atomic import write_bytes_atomic
from lumos.viz.image import data_uri

Number = float | int
Value = Number | tuple[Number, Number] | str | None
Kind = Literal["input", "ig", "lrp", "baseline"]


@dataclass
class Text:
    """A paragraph of plain text (escaped)."""

    text: str


@dataclass
class Note:
    """A highlighted remark: ``warn`` for something skipped or degraded, ``info`` otherwise."""

    text: str
    level: Literal["warn", "info"] = "warn"


@dataclass
class KeyValues:
    """A two-column table of facts (model, data, accuracy, versions)."""

    items: Mapping[str, str]
    title: str = ""


@dataclass
class Table:
    """Numbers with the best value per column marked.

    ``rows`` are ``(name, values)``; a value is a number, ``(mean, standard error)``, a string or
    ``None`` (not measured). ``best[j]`` is ``"max"``, ``"min"`` or ``None`` for column ``j``.
    """

    columns: Sequence[str]
    rows: Sequence[tuple[str, Sequence[Value]]]
    best: Sequence[Literal["max", "min"] | None] = ()
    title: str = ""
    caption: str = ""
    digits: int = 3


@dataclass
class Figure:
    """An image (PNG bytes or a Pillow image) with a caption."""

    image: bytes | Image.Image
    caption: str = ""
    alt: str = ""


@dataclass
class Row:
    """One sample of a gallery: a label, a caption (prediction vs truth) and one image per column.

    ``correct`` colours the caption (``None``: no ground truth).
    """

    label: str
    images: Sequence[Image.Image | None]
    caption: str = ""
    correct: bool | None = None


@dataclass
class Gallery:
    """Samples x methods: the heatmaps of every method for every sample, side by side.

    ``name`` identifies the gallery in the HTML (``data-gallery``), ``kinds`` says for each column
    whether it shows the ``input``, ``ig``, ``lrp`` or a ``baseline`` method.
    """

    name: str
    columns: Sequence[str]
    kinds: Sequence[Kind]
    rows: Sequence[Row]
    title: str = ""
    caption: str = ""
    cell: int = 112
    photo: bool = False


@dataclass
class Code:
    """Preformatted text, e.g. the configuration to rerun the study."""

    text: str
    title: str = ""


Block = Text | Note | KeyValues | Table | Figure | Gallery | Code


@dataclass
class Section:
    """A titled part of the report."""

    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    """The whole report."""

    title: str
    sections: list[Section]
    subtitle: str = ""


def render(report: Report) -> str:
    """The report as one HTML document (a string)."""
    from lumos import __version__

    template = Template(_asset("report.html"))
    body = "\n".join(_section(k, s) for k, s in enumerate(report.sections))
    toc = "".join(f'<li><a href="#s{k}">{_e(s.title)}</a></li>'
                  for k, s in enumerate(report.sections))
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return template.substitute(title=_e(report.title), subtitle=_e(report.subtitle), toc=toc,
                               body=body, css=_asset("report.css"), version=_e(__version__),
                               created=created)


def write(report: Report, path: str | os.PathLike[str]) -> Path:
    """Render ``report`` and write it to ``path`` atomically; returns the path."""
    return write_bytes_atomic(render(report).encode("utf-8"), path)


def _asset(name: str) -> str:
    folder = resources.files("lumos.viz").joinpath("templates")
    return folder.joinpath(name).read_text(encoding="utf-8")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _section(index: int, section: Section) -> str:
    blocks = "\n".join(_block(b) for b in section.blocks)
    return f'<section id="s{index}">\n<h2>{_e(section.title)}</h2>\n{blocks}\n</section>'


def _block(block: Block) -> str:
    if isinstance(block, Text):
        return f"<p>{_e(block.text)}</p>"
    if isinstance(block, Note):
        return f'<div class="note {block.level}">{_e(block.text)}</div>'
    if isinstance(block, KeyValues):
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in block.items.items())
        return f'{_title(block.title)}<table class="kv">{rows}</table>'
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        return _figure(block)
    if isinstance(block, Gallery):
        return _gallery(block)
    return f"{_title(block.title)}<pre>{_e(block.text)}</pre>"


def _title(title: str) -> str:
    return f"<h3>{_e(title)}</h3>" if title else ""


def _figure(fig: Figure) -> str:
    return (f'<figure><img src="{data_uri(fig.image)}" alt="{_e(fig.alt or fig.caption)}">'
            f"<figcaption>{_e(fig.caption)}</figcaption></figure>")


def _mean(value: Value) -> float | None:
    if isinstance(value, tuple):
        value = value[0]
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _best_rows(table: Table) -> list[set[int]]:
    """For each column, the row indices holding its best value (ties all marked)."""
    marks: list[set[int]] = []
    for j in range(len(table.columns)):
        rule = table.best[j] if j < len(table.best) else None
        values = [(i, _mean(vals[j]) if j < len(vals) else None)
                  for i, (_, vals) in enumerate(table.rows)]
        present = [(i, v) for i, v in values if v is not None]
        if rule is None or not present:
            marks.append(set())
            continue
        target = max(v for _, v in present) if rule == "max" else min(v for _, v in present)
        marks.append({i for i, v in present if v == target})
    return marks


def _format(value: Value, digits: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return _e(value)
    if isinstance(value, tuple):
        return f"{value[0]:.{digits}g} ± {value[1]:.2g}"
    return f"{value:.{digits}g}"


def _table(table: Table) -> str:
    marks = _best_rows(table)
    head = "".join(f"<th>{_e(c)}{_arrow(table, j)}</th>" for j, c in enumerate(table.columns))
    body = []
    for i, (name, values) in enumerate(table.rows):
        cells = []
        for j in range(len(table.columns)):
            value = values[j] if j < len(values) else None
            cls = "num best" if i in marks[j] else "num"
            cells.append(f'<td class="{cls}">{_format(value, table.digits)}</td>')
        body.append(f"<tr><th>{_e(name)}</th>{''.join(cells)}</tr>")
    caption = f"<p class=\"subtitle\">{_e(table.caption)}</p>" if table.caption else ""
    return (f'{_title(table.title)}<div class="scroll"><table class="numbers"><tr><th></th>{head}'
            f"</tr>{''.join(body)}</table></div>{caption}")


def _arrow(table: Table, j: int) -> str:
    rule = table.best[j] if j < len(table.best) else None
    return {"max": " ↑", "min": " ↓"}.get(rule or "", "")


def _gallery(gallery: Gallery) -> str:
    if len(gallery.kinds) != len(gallery.columns):
        raise ValueError(f"gallery {gallery.name!r}: {len(gallery.kinds)} kinds for "
                         f"{len(gallery.columns)} columns")
    head = "".join(f"<th>{_e(c)}</th>" for c in gallery.columns)
    img_class = "photo" if gallery.photo else "digit"
    rows = []
    for row in gallery.rows:
        state = {True: "ok", False: "wrong", None: ""}[row.correct]
        label = (f'<td class="label"><b>{_e(row.label)}</b><br>'
                 f'<span class="{state}">{_e(row.caption)}</span></td>')
        cells = []
        for column, kind, image in zip(gallery.columns, gallery.kinds, row.images, strict=False):
            if image is None:
                cells.append("<td>–</td>")
                continue
            alt = f"{column}: {row.label}"
            cells.append(f'<td><img class="{img_class}" src="{data_uri(image)}" alt="{_e(alt)}" '
                         f'data-gallery="{_e(gallery.name)}" data-kind="{kind}" '
                         f'data-method="{_e(_slug(column))}"></td>')
        rows.append(f"<tr>{label}{''.join(cells)}</tr>")
    caption = f'<p class="subtitle">{_e(gallery.caption)}</p>' if gallery.caption else ""
    return (f'{_title(gallery.title)}<div class="scroll"><table class="gallery" '
            f'data-gallery="{_e(gallery.name)}" style="--cell: {int(gallery.cell)}px">'
            f"<tr><th>sample</th>{head}</tr>{''.join(rows)}</table></div>{caption}")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
