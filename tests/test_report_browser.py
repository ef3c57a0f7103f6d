"""Must show 2: the demo's report in a real browser (headless Chromium).

``lumos demo --fast`` writes the report; Chromium opens a copy with a small inline check script
(the report itself has no script, and its Content-Security-Policy would forbid one, so the copy
drops the policy: any request the page tried would then really go out and be listed). The script
records, after the load event, every image with its ``naturalWidth`` and every resource the page
requested; ``--dump-dom`` hands that back. A second run takes a screenshot.

Chromium is Debian's ``chromium`` package; when missing, the test installs it with apt-get and
skips with the reason only where that is impossible.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lumos.cli import main

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]

CHECK = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images).map(function (img) {
    return {width: img.naturalWidth, complete: img.complete, gallery: img.dataset.gallery || "",
            kind: img.dataset.kind || "", src: img.src.slice(0, 22)};
  });
  var requested = performance.getEntriesByType("resource").map(function (e) { return e.name; });
  var out = document.createElement("pre");
  out.id = "lumos-check";
  out.textContent = JSON.stringify({images: images, requested: requested});
  document.body.appendChild(out);
});
</script>"""


def _chromium() -> str:
    """Path of a Chromium binary, installing Debian's package if needed (else skip, saying why)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be installed here (needs apt-get as "
                    "root): apt-get install -y chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([apt, "update"], [apt, "install", "-y", "chromium"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900,
                              check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            pytest.skip(f"chromium could not be installed ({' '.join(cmd[1:])}: {tail[0]})")
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("apt-get installed chromium but no chromium binary is on PATH")
    return found


def _browse(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--fast", "--quiet", "--out", str(out)]) == 0
    return out / "report.html"


@pytest.mark.slow
def test_report_loads_in_chromium_with_every_image_and_no_request(demo_report: Path,
                                                                  tmp_path: Path) -> None:
    chromium = _chromium()
    html = demo_report.read_text(encoding="utf-8")
    assert not re.search(r"""<(img|link|script|iframe)[^>]+(src|href)=["']?(https?:)?//""",
                         html), "the report references something outside itself"
    checked = tmp_path / "checked.html"
    checked.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
                       .replace("</body>", CHECK + "</body>"), encoding="utf-8")
    dom = _browse(chromium, tmp_path / "profile1", "--virtual-time-budget=10000", "--dump-dom",
                  checked.as_uri())
    found = re.search(r'<pre id="lumos-check">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"chromium returned no check result: {dom.stderr[-500:]}"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    images = result["images"]
    assert len(images) > 20
    assert [i for i in images if not (i["complete"] and i["width"] > 0)] == []
    assert {i["src"] for i in images} == {"data:image/png;base64,"}
    assert result["requested"] == [], "the page requested something"
    for gallery in ("mnist", "photos"):
        kinds = {i["kind"] for i in images if i["gallery"] == gallery}
        assert {"input", "ig", "lrp"} <= kinds, f"{gallery}: heatmaps missing, got {kinds}"
    shot = tmp_path / "report.png"
    done = _browse(chromium, tmp_path / "profile2", "--window-size=1280,2400",
                   f"--screenshot={shot}", demo_report.as_uri())
    assert shot.is_file() and shot.stat().st_size > 20_000, done.stderr[-500:]
