"""The explorer as one self-contained HTML page: script, style, data and thumbnails inline.

Same page as ``lumos serve`` (the same ``app.js``), reading ``window.LUMOS_STATIC`` instead of
the JSON API; every image is a ``data:`` URI and a Content-Security-Policy forbids any request.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lumos.atomic import write_bytes_atomic
from lumos.explorer.data import NotFound, StoreView
from lumos.explorer.server import asset

EMBED_LIMIT = 3000
"""Samples per class whose thumbnails are embedded (the rest are plotted without images)."""

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")


def write_page(directory: str | os.PathLike[str], out: str | os.PathLike[str],
               methods: Sequence[str] | None = None) -> Path:
    """Write the static explorer of ``directory`` to ``out``; returns its path.

    ``methods``: the analysed methods to include (default: all); heatmaps of every method of
    the store are embedded for comparison.
    """
    from lumos.viz.image import data_uri

    view = StoreView(directory)
    index = view.index()
    keep = [m for m in (methods or view.analysed) if m in view.analysed]
    index["analysed"] = {m: index["analysed"][m] for m in keep}
    classes: dict[str, Any] = {}
    images: dict[str, str] = {}
    prototypes: dict[str, str] = {}
    for m in keep:
        for c in index["analysed"][m]:
            payload = view.class_payload(m, c["key"])
            classes[f"{m}/{c['key']}"] = payload
            for k, labels in payload["clusterings"].items():
                for j in range(int(k)):
                    if j in labels:
                        prototypes[f"{m}/{c['key']}/{k}/{j}"] = data_uri(
                            view.prototype(m, c["key"], int(k), j))
            for i in payload["index"][:EMBED_LIMIT]:
                _embed(view, images, i, data_uri)
    blob = {"index": index, "classes": classes, "images": images, "prototypes": prototypes}
    return write_bytes_atomic(_html(blob).encode("utf-8"), out)


def _embed(view: StoreView, images: dict[str, str], sample: int, uri: Any) -> None:
    if index_has_input(view) and f"input/{sample}" not in images:
        images[f"input/{sample}"] = uri(view.image("input", None, sample))
    for m in view.methods:
        for kind in ("heatmap", "overlay") if index_has_input(view) else ("heatmap",):
            key = f"{kind}/{m}/{sample}"
            if key not in images:
                with contextlib.suppress(NotFound):  # that method did not explain it
                    images[key] = uri(view.image(kind, m, sample))


def index_has_input(view: StoreView) -> bool:
    """Whether the store has ``input.h5`` (inputs and overlays can be drawn)."""
    return (view.directory / "input.h5").is_file()


def _html(blob: dict[str, Any]) -> str:
    page = asset("index.html").decode("utf-8")
    style = asset("app.css").decode("utf-8")
    script = asset("app.js").decode("utf-8")
    check = asset("selftest.js").decode("utf-8")
    data = json.dumps(blob, separators=(",", ":")).replace("</", "<\\/")
    page = page.replace('<link rel="stylesheet" href="/assets/app.css">',
                        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
                        f"<style>\n{style}</style>")
    page = page.replace('<script src="/assets/selftest.js"></script>',
                        f"<script>\n{check}</script>")
    return page.replace('<script src="/assets/app.js"></script>',
                        f"<script>window.LUMOS_STATIC = {data};</script>\n"
                        f"<script>\n{script}</script>")
