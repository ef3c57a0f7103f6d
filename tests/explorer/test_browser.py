"""Must show 4: the explorer in headless Chromium, served by ``lumos serve`` and as a static page.

The page's own ``#selftest`` mode drives the scatter with synthetic pointer and wheel events
(box and lasso selections, zoom, pan), then clicks the first cluster in the legend, waits for the
selected samples' images and writes what happened into ``<pre id="lumos-check">``: points
drawn, coloured canvas pixels, the selection, every image with its natural width, and every
resource the page requested. Chromium runs with every host name unresolvable except
127.0.0.1, and the test asserts no request went anywhere else. A screenshot goes to docs/ when
``LUMOS_SCREENSHOT`` names a file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from lumos.explorer.data import StoreView
from lumos.explorer.server import make_server
from lumos.explorer.static import write_page
from test_report_browser import FLAGS, _chromium

ISOLATED = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


@pytest.fixture(scope="module")
def served(analysed: Path) -> Iterator[str]:
    server = make_server(StoreView(analysed), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def browse(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``url`` with the isolation flags."""
    return subprocess.run([_chromium(), *FLAGS, *ISOLATED, f"--user-data-dir={profile}",
                           *extra, url], capture_output=True, text=True, timeout=180,
                          check=False)


def self_test(url: str, profile: Path) -> dict[str, Any]:
    """The page's self-test result for ``url`` (``#selftest`` appended)."""
    done = browse(url + "#selftest", profile, "--virtual-time-budget=20000", "--dump-dom")
    found = re.search(r'<pre id="lumos-check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"chromium returned no self-test result: {done.stderr[-800:]}"
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    return dict(json.loads(text.replace("&amp;", "&")))


def check(result: dict[str, Any]) -> None:
    assert result["points"] == 70 and result["drawn"] == 70
    g = result["gestures"]  # box / lasso around everything, a partial lasso, zoom, pan
    assert g["box"] == g["lasso"] == 70 and 0 < g["lassoPart"] < 70, g
    assert g["zoom"] > 1.1 and g["panX"] == 56, g  # a tenth of the 560-pixel canvas
    assert result["coloured"] > 500, "the scatter looks blank"
    assert result["selected"] == result["clusterSize"] > 0
    assert result["title"].startswith("cluster 0 of k-means")
    kinds = {i["kind"] for i in result["images"]}
    assert {"input", "heatmap:ig", "overlay:ig", "heatmap:lrp:epsilon-plus", "prototype"} <= kinds
    assert [i for i in result["images"] if i["width"] <= 0] == []
    assert len([i for i in result["images"] if i["kind"] == "input"]) == \
        min(48, result["selected"])


@pytest.mark.slow
def test_served_explorer_in_chromium(served: str, tmp_path: Path) -> None:
    result = self_test(served, tmp_path / "p1")
    check(result)
    assert result["requested"], "the page loaded nothing from its server"
    outside = [u for u in result["requested"] if not u.startswith(served)]
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    shot = os.environ.get("LUMOS_SCREENSHOT")
    if shot:
        browse(served + "#selftest", tmp_path / "p2", "--window-size=1280,1500",
               "--virtual-time-budget=20000", f"--screenshot={shot}")
        assert Path(shot).stat().st_size > 20_000


@pytest.mark.slow
def test_static_page_in_chromium(analysed: Path, tmp_path: Path) -> None:
    page = write_page(analysed, tmp_path / "spray.html")
    result = self_test(page.as_uri(), tmp_path / "p1")
    check(result)
    assert {i["src"] for i in result["images"]} == {"data:image/png;base64,"}
    assert result["requested"] == [], "the static page requested something"
