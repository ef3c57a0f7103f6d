"""The explorer's server: its API, no way out of DIR, a busy port in one line, the static page."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lumos.explorer.data import StoreView
from lumos.explorer.server import make_server
from lumos.explorer.static import write_page

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def served(analysed: Path) -> Iterator[str]:
    server = make_server(StoreView(analysed), port=0)
    assert server.server_address[0] == "127.0.0.1"  # this machine only, unless --host
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, b"", ""


def test_api_serves_the_page_the_analysis_and_images(served: str) -> None:
    status, body, _ = _get(served + "/")
    assert status == 200 and b"/assets/app.js" in body
    index = json.loads(_get(served + "/api/index")[1])
    assert index["methods"] == ["ig", "lrp:epsilon-plus"]
    assert [c["key"] for c in index["analysed"]["ig"]] == ["1", "2"]
    data = json.loads(_get(served + "/api/class/lrp:epsilon-plus/2")[1])
    assert data["n"] == 50 and data["index"][0] == 70 and len(data["embeddings"]["tsne"]) == 50
    assert set(data["clusterings"]) >= {"2", "3"} and data["rank"].keys() == {"ig"}
    for path in ("/api/image/input/5.png", "/api/image/heatmap/ig/5.png",
                 "/api/image/overlay/lrp%3Aepsilon-plus/5.png", "/api/prototype/ig/1/2/1.png"):
        status, body, kind = _get(served + path)
        assert status == 200 and kind == "image/png" and body[:4] == b"\x89PNG", path


@pytest.mark.parametrize("path", [
    "/../../etc/passwd", "/assets/../../../etc/passwd", "/assets/..%2f..%2fdata.py",
    "/%2e%2e/%2e%2e/etc/passwd", "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/assets/%2e%2e/data.py",
    "//etc/passwd", "/%2Fetc%2Fpasswd", "/etc/passwd", "/ig.h5", "/input.h5",
    "/api/class/..%2f..%2fetc/1", "/api/class/%2e%2e/1", "/api/image/input/..%2f1.png",
    "/api/image/heatmap/%2Ftmp%2Fx/1.png", "/api/image/input/-1.png",
    "/api/image/input/99999.png", "/api/class/ig/9", "/api/class/gradient/1",
    "/assets/index.html", "/assets/", "/api/prototype/ig/1/7/0.png",
])
def test_anything_outside_the_api_is_404(served: str, path: str) -> None:
    assert _get(served + path)[0] == 404


@pytest.mark.slow
def test_a_second_serve_on_a_busy_port_says_so_in_one_line(analysed: Path, served: str) -> None:
    port = served.rsplit(":", 1)[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", "import sys; from lumos.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", "serve", str(analysed),
                           "--port", port], capture_output=True, text=True, timeout=120,
                          env=env, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0] and port in lines[0], done.stderr


def test_static_page_is_self_contained(analysed: Path, tmp_path: Path) -> None:
    page = write_page(analysed, tmp_path / "spray.html")
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "/assets/" not in html and "Content-Security-Policy" in html
    blob = json.loads(re.search(r"window.LUMOS_STATIC = (.*?);</script>", html, re.S)
                      .group(1).replace("<\\/", "</"))
    assert set(blob["classes"]) == {"ig/1", "ig/2", "lrp:epsilon-plus/1", "lrp:epsilon-plus/2"}
    assert len([k for k in blob["images"] if k.startswith("input/")]) == 120
    assert all(v.startswith("data:image/png;base64,") for v in blob["images"].values())
    assert "ig/1/3/2" in blob["prototypes"]
