"""The explorer's local web server (standard library only).

Routes (GET only; anything else is 404, and so is any path segment that is empty, ``.``,
``..`` or holds characters outside ``[A-Za-z0-9_.:+-]`` after percent-decoding):

    /                                        the page (assets/index.html)
    /assets/app.js, selftest.js, app.css     its scripts and style, shipped in the package
    /api/index                               methods and analysed classes (JSON)
    /api/class/<method>/<class>              one class's analysis (JSON)
    /api/image/input/<sample>.png            an input
    /api/image/<heatmap|overlay>/<method>/<sample>.png
    /api/prototype/<method>/<class>/<k>/<cluster>.png   a cluster's mean heatmap
    /concepts                                the concept view (assets/concepts.html)
    /api/concepts                            methods and their analysed concept layers
    /api/concepts/<method>/<layer>           a layer's concepts and their references
    /api/concepts/<method>/<layer>/sample/<sample>        one sample's top concepts
    /api/concepts/<method>/<layer>/<relmax|actmax>/<concept>/<k>/<input|heatmap>.png
    /api/concepts/<method>/<layer>/sample/<sample>/<t>.png  its conditional heatmap
"""

from __future__ import annotations

import errno
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from lumos.explorer.data import NotFound, StoreView

_JS = "text/javascript; charset=utf-8"
ASSETS = {"app.js": _JS, "selftest.js": _JS, "concepts.js": _JS, "concepts-check.js": _JS,
          "app.css": "text/css; charset=utf-8"}
_SEGMENT = re.compile(r"^[A-Za-z0-9_.:+-]+$")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'")


class PortBusy(OSError):
    """The port is taken (by another ``lumos serve`` or anything else)."""


def asset(name: str) -> bytes:
    """A file shipped in ``lumos/explorer/assets``."""
    return resources.files("lumos.explorer").joinpath("assets").joinpath(name).read_bytes()


def route(view: StoreView, raw_path: str) -> tuple[bytes, str]:
    """``(body, content type)`` for a request path; raises :class:`NotFound`."""
    path = urlsplit(raw_path).path
    if path == "/" or path == "/concepts":
        page = "index.html" if path == "/" and view.analysed else "concepts.html"
        return asset(page), "text/html; charset=utf-8"
    parts = [unquote(p) for p in path.split("/")[1:]]
    if any(not _SEGMENT.match(p) or p in (".", "..") for p in parts):
        raise NotFound(path)
    if parts[:2] == ["api", "concepts"]:
        return _concepts(view, parts[2:])
    match parts:
        case ["assets", name] if name in ASSETS:
            return asset(name), ASSETS[name]
        case ["api", "index"]:
            return _json(view.index())
        case ["api", "class", method, group]:
            return _json(view.class_payload(method, group))
        case ["api", "image", "input", name]:
            return view.image("input", None, _number(name, ".png")), "image/png"
        case ["api", "image", kind, method, name]:
            return view.image(kind, method, _number(name, ".png")), "image/png"
        case ["api", "prototype", method, group, k, name]:
            return view.prototype(method, group, _number(k, ""), _number(name, ".png")), \
                "image/png"
    raise NotFound(path)


def _concepts(view: StoreView, parts: list[str]) -> tuple[bytes, str]:
    concepts = view.concept_view()
    match parts:
        case []:
            return _json(concepts.index())
        case [method, layer]:
            return _json(concepts.layer_payload(method, layer))
        case [method, layer, "sample", sample]:
            return _json(concepts.sample_payload(method, layer, _number(sample, "")))
        case [method, layer, "sample", sample, name]:
            return concepts.sample_image(method, layer, _number(sample, ""),
                                         _number(name, ".png")), "image/png"
        case [method, layer, mode, concept, k, name] if name.endswith(".png"):
            return concepts.reference_image(method, layer, mode, _number(concept, ""),
                                            _number(k, ""), name[:-4]), "image/png"
    raise NotFound("/".join(parts))


def _number(text: str, suffix: str) -> int:
    stem = text[:-len(suffix)] if suffix and text.endswith(suffix) else text
    if (suffix and not text.endswith(suffix)) or not stem.isdigit():
        raise NotFound(text)
    return int(stem)


def _json(value: Any) -> tuple[bytes, str]:
    return json.dumps(value, separators=(",", ":")).encode(), "application/json"


def make_server(view: StoreView, host: str = "127.0.0.1", port: int = 8765
                ) -> ThreadingHTTPServer:
    """A server for ``view`` bound to ``host:port`` (port 0: any free one)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "lumos-explorer"

        def do_GET(self) -> None:
            try:
                body, kind = route(view, self.path)
                status = 200
            except NotFound:
                body, kind, status = b"not found\n", "text/plain; charset=utf-8", 404
            except Exception as err:  # a broken store file: one line, not a dead connection
                body = f"error: {type(err).__name__}: {err}\n".encode()
                kind, status = "text/plain; charset=utf-8", 500
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet by default
            pass

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise PortBusy(f"port {port} on {host} is already in use (another `lumos serve`?); "
                           "choose another with --port") from err
        raise
