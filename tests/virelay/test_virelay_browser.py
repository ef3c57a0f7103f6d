"""Must show 3: ViRelAy's own web app, served by its own server on 127.0.0.1, draws a lumos store
in headless Chromium: the project page, the eigenvalue plot, the spectral embedding on the
eigenvectors of the 2nd and 3rd smallest eigenvalues, and a cluster's heatmaps.

ViRelAy's page is driven as a user would: a small script, added to the ``index.html`` its server
sends, picks the category, the clustering, the spectral embedding and its axes, the attribution
view and the first cluster, then writes what the page shows into ``<pre id="lumos-check">``.
With ``LUMOS_SCREENSHOT=docs/assets/virelay.png`` the same steps end in that screenshot.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from lumos.cli import main
from test_report_browser import FLAGS, _chromium

ISOLATED = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]

DRIVE = """<script>
(function () {
  var steps = %s, log = [];
  function choose(name, text) {  // text "@-2": the second option from the end
    var s = document.querySelector('select[name="' + name + '"]');
    if (!s || !s.options.length) return false;
    for (var i = 0; i < s.options.length; i++) {
      var want = text.charAt(0) === "@" ? s.options.length + Number(text.slice(1)) : -1;
      if (i === want || s.options[i].textContent.trim() === text) {
        s.selectedIndex = i; s.dispatchEvent(new Event("change", {bubbles: true}));
        log.push(name + "=" + s.options[i].textContent.trim()); return true;
      }
    }
    return false;
  }
  function act(step) {
    if (step[0] === "select") return choose(step[1], step[2]);
    var found = step[0] === "click" ? [document.querySelector(step[1])]
      : document.querySelectorAll("#cluster-pane button");
    var el = found[step[0] === "click" ? 0 : step[1]];
    if (el) { el.click(); log.push(step.join(" ")); }
    return !!el;
  }
  function report(tries) {  // once the selected samples' images have loaded (or 20 s)
    var shown = Array.prototype.slice.call(
      document.querySelectorAll("#selected-attributions-pane img"));
    var pending = !shown.length || shown.some(function (img) { return !img.complete; });
    if (pending && tries < 100) { setTimeout(function () { report(tries + 1); }, 200); return; }
    var images = shown.map(function (img) {
      return {width: img.naturalWidth, src: img.getAttribute("src")};
    });
    var out = document.createElement("pre");
    out.id = "lumos-check"; out.style.display = "none";
    out.textContent = JSON.stringify({
      steps: log, images: images,
      eigenvaluePlot: !!document.querySelector("plotly-plot .bars, plotly-plot svg"),
      clusters: document.querySelectorAll("#cluster-pane button").length,
      categories: Array.prototype.map.call(
        document.querySelectorAll('select[name="category"] option'),
        function (o) { return o.textContent.trim(); }),
      requested: performance.getEntriesByType("resource").map(function (e) { return e.name; })
    });
    document.body.appendChild(out);
  }
  function run(i, tries) {
    if (i >= steps.length) { setTimeout(function () { report(0); }, 1000); return; }
    if (!act(steps[i]) && tries < 50) {
      setTimeout(function () { run(i, tries + 1); }, 200); return;
    }
    setTimeout(function () { run(i + 1, 0); }, 1500);
  }
  setTimeout(function () { run(0, 0); }, 1000);
})();
</script>"""



def steps(store: Path) -> tuple[list[list[Any]], list[str]]:
    """What the script does on the ``lrp:epsilon-plus`` project, and what it should log: class
    7, its eigengap's clustering, the spectral embedding on the eigenvectors of the 2nd and 3rd
    smallest eigenvalues (columns E-2 and E-3, CoRelAy's order), the heatmaps of cluster 1."""
    from lumos.analysis.layout import read_analysis
    from lumos.store.layout import analysis_file

    c = read_analysis(analysis_file(store, "lrp:epsilon-plus"))["7"]
    width, k = c["embeddings"]["spectral"].shape[1], c["eigengap_k"]
    todo = [["select", "category", "7 (7)"], ["select", "clustering", f"kmeans-{k:02d}"],
            ["select", "embedding", "spectral"],
            ["select", "horizontal-axis-dimension-index", "@-2"],
            ["select", "vertical-axis-dimension-index", "@-3"],
            ["click", "#radio-button-attribution-image-mode-attribution"], ["cluster", 0]]
    logged = ["category=7 (7)", f"clustering=kmeans-{k:02d}", "embedding=spectral",
              f"horizontal-axis-dimension-index={width - 2}",
              f"vertical-axis-dimension-index={width - 3}",
              "click #radio-button-attribution-image-mode-attribution", "cluster 0"]
    return todo, logged


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def with_script(app: WsgiApp, script: bytes) -> WsgiApp:
    """ViRelAy's WSGI app, with ``script`` added to the pages of its web app."""
    def wrapped(environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/api/") or "." in path.rsplit("/", 1)[-1]:
            return app(environ, start)
        got: dict[str, Any] = {}
        body = b"".join(app(environ, lambda status, headers, exc=None: got.update(
            status=status, headers=headers)))
        body = body.replace(b"</body>", script + b"</body>")
        headers = [(k, v) for k, v in got["headers"] if k.lower() != "content-length"]
        start(got["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]
    return wrapped


@pytest.fixture(scope="module")
def shown_store(mnist_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test store; for the docs' screenshot (``LUMOS_SCREENSHOT``) the issue's: 300 digits,
    IG and LRP epsilon-plus, ``lumos spray`` with its defaults on classes 0, 1 and 7."""
    if not os.environ.get("LUMOS_SCREENSHOT"):
        return mnist_store
    folder = tmp_path_factory.mktemp("shot") / "mnist-300"
    assert main(["explain-dataset", "--model", "mnist5k-cnn", "--dataset", "mnist-5k",
                 "--split", "all", "--limit", "300", "--method", "ig", "--method",
                 "lrp:epsilon-plus", "--ig-steps", "16", "--out", str(folder), "--quiet"]) == 0
    assert main(["spray", str(folder), "--method", "ig", "--method", "lrp:epsilon-plus",
                 "--label", "0", "--label", "1", "--label", "7", "--quiet"]) == 0
    return folder


@pytest.fixture(scope="module")
def virelay_page(shown_store: Path) -> Iterator[tuple[str, list[str]]]:
    from virelay.application import run_wsgi_app
    from werkzeug.serving import make_server

    assert main(["export", "virelay", str(shown_store), "--quiet"]) == 0
    app = run_wsgi_app([str(p) for p in sorted((shown_store / "virelay").glob("*.yaml"))])
    todo, logged = steps(shown_store)
    server = make_server("127.0.0.1", 0, with_script(app, (DRIVE % json.dumps(todo)).encode()),
                         threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", logged
    server.shutdown()
    server.server_close()


def _browse(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_chromium(), *FLAGS, *ISOLATED, f"--user-data-dir={profile}",
                           "--window-size=1400,900", "--virtual-time-budget=60000", *extra, url],
                          capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.slow
def test_virelay_web_app_draws_a_lumos_store(virelay_page: tuple[str, list[str]],
                                             tmp_path: Path) -> None:
    served, logged = virelay_page
    url = f"{served}/projects/1"  # lrp:epsilon-plus
    done = _browse(url, tmp_path / "p1", "--dump-dom")
    found = re.search(r'<pre id="lumos-check"[^>]*>(.*?)</pre>', done.stdout, re.S)
    assert found, f"ViRelAy's page did not finish: {done.stderr[-800:]}"
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    result = json.loads(text.replace("&amp;", "&"))
    assert result["steps"] == logged
    assert result["categories"] == ["0 (0)", "1 (1)", "7 (7)"]
    assert result["eigenvaluePlot"] and result["clusters"] >= 2
    heatmaps = [i for i in result["images"] if "/heatmap?colorMap=" in (i["src"] or "")]
    assert heatmaps and all(i["width"] == 28 for i in heatmaps), result["images"]
    outside = [u for u in result["requested"] if not u.startswith(served)]
    assert outside == [], f"requests left 127.0.0.1: {outside}"
    shot = os.environ.get("LUMOS_SCREENSHOT")
    if shot:
        _browse(url, tmp_path / "p2", f"--screenshot={shot}")
        assert Path(shot).stat().st_size > 20_000
