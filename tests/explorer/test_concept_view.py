"""The explorer's concept view: its JSON and PNG routes on a small store with a concept analysis,
and :func:`concept_self_test`, the page in headless Chromium (driven by the Clever-Hans test,
``tests/experiments/test_clever_hans.py``, on a model that learnt a planted mark)."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "store"))
sys.path.insert(0, str(Path(__file__).parent))

from storefix import make_checkpoint, make_folder
from test_browser import browse

from lumos.cli import main
from lumos.explorer.data import NotFound, StoreView
from lumos.explorer.server import make_server, route


def concept_self_test(store: Path, concept: int, tmp: Path) -> dict[str, Any]:
    """The concept view's ``#selftest`` result for ``concept`` of the store's first analysed
    layer, served by ``lumos serve``'s server; nothing requested off the server. A screenshot
    goes to ``$LUMOS_CONCEPT_SCREENSHOT`` when set."""
    server = make_server(StoreView(store), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    url = f"{base}concepts#concept={concept}&selftest"
    try:
        done = browse(url, tmp / "chromium-1", "--virtual-time-budget=30000", "--dump-dom")
        found = re.search(r'<pre id="lumos-check">(.*?)</pre>', done.stdout, re.S)
        assert found, f"chromium returned no self-test result: {done.stderr[-800:]}"
        text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
        result: dict[str, Any] = json.loads(text.replace("&amp;", "&"))
        shot = os.environ.get("LUMOS_CONCEPT_SCREENSHOT")
        if shot:
            browse(url, tmp / "chromium-2", "--window-size=1280,1500",
                   "--virtual-time-budget=30000", f"--screenshot={shot}")
    finally:
        server.shutdown()
        server.server_close()
    assert result["requested"] and all(u.startswith(base) for u in result["requested"])
    return result


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("concepts")
    folder = make_folder(root / "images", per_class=5)
    out = root / "store"
    assert main(["explain-dataset", "--model", str(make_checkpoint(root)), "--dataset",
                 f"folder:{folder}", "--method", "lrp:epsilon-plus", "--concepts", "features.4",
                 "--quiet", "--out", str(out)]) == 0
    assert main(["concepts", str(out), "--layer", "features.4", "--top", "3",
                 "--sample-heatmaps", "2", "--concept", "0", "--concept", "5", "--quiet"]) == 0
    return out


def _json(view: StoreView, path: str) -> Any:
    body, kind = route(view, path)
    assert kind == "application/json"
    return json.loads(body)


def test_concept_routes(store: Path) -> None:
    view = StoreView(store)  # concepts only, no SpRAy analysis: the page is the concept view
    assert b"concepts.js" in route(view, "/")[0]
    index = _json(view, "/api/concepts")
    assert index["methods"]["lrp:epsilon-plus"][0]["layer"] == "features.4"
    assert index["clusters"] is False and index["classes"] == ["a", "b", "c"]
    layer = _json(view, "/api/concepts/lrp:epsilon-plus/features.4")
    assert layer["channels"] == 32 and len(layer["mean"]) == 32 and layer["heatmaps"] == [0, 5]
    refs = layer["references"]["relmax"]["index"]
    assert len(refs) == 32 and all(len(r) == 3 for r in refs)
    sample = _json(view, f"/api/concepts/lrp:epsilon-plus/features.4/sample/{refs[0][0]}")
    assert len(sample["top"]) == 8 and sample["heatmaps"] == 2
    png = b"\x89PNG"
    for path in ("relmax/0/0/input.png", "relmax/5/2/heatmap.png", "actmax/0/1/input.png",
                 "relmax/7/0/input.png", f"sample/{refs[0][0]}/1.png"):
        assert route(view, f"/api/concepts/lrp:epsilon-plus/features.4/{path}")[0][:4] == png
    for bad in ("relmax/7/0/heatmap.png",  # concept 7 got no heatmaps
                "relmax/32/0/input.png", "relmax/0/3/input.png", "other/0/0/input.png",
                "relmax/0/0/other.png", "sample/999/0.png", "sample/0/2.png"):
        with pytest.raises(NotFound):
            route(view, f"/api/concepts/lrp:epsilon-plus/features.4/{bad}")
    with pytest.raises(NotFound):
        route(view, "/api/concepts/lrp:epsilon-plus/features.9")
    with pytest.raises(NotFound):
        route(view, "/api/concepts/ig/features.4")
