"""Must show 1: what ``lumos export virelay`` writes, read by ViRelAy's own code and served by
ViRelAy's own server on 127.0.0.1, for a one-channel (mnist-5k) and an RGB (``folder:``) store
with two methods each: the project list, every sample image, every heatmap in each of ViRelAy's
colour maps (plain and overlay), and the SpRAy analyses with their eigenvalues."""

from __future__ import annotations

import io
import json
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from PIL import Image

from lumos.analysis.layout import read_analysis
from lumos.cli import main
from lumos.store import open_store
from lumos.store.layout import analysis_file

Exported = tuple[Path, Path]


@pytest.fixture(scope="module", params=["mnist_store", "rgb_store"])
def exported(request: pytest.FixtureRequest) -> Exported:
    folder: Path = request.getfixturevalue(request.param)
    assert main(["export", "virelay", str(folder), "--quiet"]) == 0
    return folder, folder / "virelay"


@pytest.fixture(scope="module")
def served(exported: Exported) -> Iterator[str]:
    from virelay.application import run_wsgi_app
    from werkzeug.serving import make_server

    app = run_wsgi_app([str(p) for p in sorted(exported[1].glob("*.yaml"))])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _expected_pixels(folder: Path, row: int) -> np.ndarray:
    """The (H, W, 3) uint8 image ViRelAy should show for a stored input row."""
    store = open_store(folder)
    x = store.arrays(None, ("data",))["data"][row]
    mean = np.asarray(store.manifest["model"]["mean"]).reshape(-1, 1, 1)
    std = np.asarray(store.manifest["model"]["std"]).reshape(-1, 1, 1)
    if (mean == 0).all() and (std == 1).all():  # linked: ViRelAy scales [0, 1] floats itself
        pixels = (x * np.float32(255.0)).astype(np.uint8)
    else:  # the export's uint8 copy, normalisation undone
        pixels = np.clip(np.rint((x.astype(np.float64) * std + mean) * 255), 0, 255)
    return np.broadcast_to(np.moveaxis(pixels, 0, -1), (*x.shape[1:], 3)).astype(np.uint8)


def test_virelay_model_reads_the_exported_projects(exported: Exported) -> None:
    from virelay.model import Workspace

    folder, out = exported
    store = open_store(folder)
    workspace = Workspace()
    for path in sorted(out.glob("*.yaml")):
        workspace.add_project(str(path))
    try:
        projects = [workspace.get_project(n) for n in workspace.get_project_names()]
        assert sorted(p.attribution_method for p in projects) == sorted(store.methods)
        assert len(set(workspace.get_project_names())) == 2
        for project in projects:
            key = project.attribution_method
            stored = store.arrays(key, ("attribution", "label"))
            analysis = read_analysis(analysis_file(folder, key))
            for group, c in analysis.items():
                sample = int(c["index"][0])
                image = project.get_sample(sample)
                assert image.data.dtype == np.uint8
                np.testing.assert_array_equal(image.data, _expected_pixels(folder, sample))
                attribution = project.get_attribution(sample)
                np.testing.assert_allclose(attribution.data.sum(axis=-1),
                                           stored["attribution"][sample].sum(axis=0), rtol=1e-6)
                assert attribution.labels[0].name == store.classes[int(group)]
                for k in c["clusterings"]:
                    shown = project.get_analysis("spray", group, f"kmeans-{k:02d}", "spectral")
                    assert shown.human_readable_category_name == store.classes[int(group)]
                    np.testing.assert_array_equal(shown.eigenvalues, c["eigenvalue"])
                    np.testing.assert_array_equal(shown.attribution_indices, c["index"])
                    np.testing.assert_array_equal(shown.clustering, c["clusterings"][k])
    finally:
        workspace.close()


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=60) as response:  # 127.0.0.1 only
        return response.status, response.headers.get_content_type(), response.read()


def _json(url: str) -> Any:
    status, kind, body = _get(url)
    assert status == 200 and kind == "application/json", url
    return json.loads(body)


def _image(url: str, size: tuple[int, int]) -> None:
    status, kind, body = _get(url)
    assert status == 200 and kind == "image/jpeg", url
    picture = Image.open(io.BytesIO(body))
    assert picture.size == size and picture.mode == "RGB", (url, picture.size, picture.mode)


def test_virelay_server_answers_every_view(exported: Exported, served: str) -> None:
    folder, _ = exported
    store = open_store(folder)
    projects = _json(f"{served}/api/projects")
    assert [p["name"] for p in projects] == sorted(f"{folder.name}: {k}" for k in store.methods)
    colour_maps = [c["name"] for c in _json(f"{served}/api/color-maps")]
    assert len(colour_maps) == 8
    status, kind, _ = _get(f"{served}/")  # ViRelAy's web app itself
    assert status == 200 and kind == "text/html"
    for project in projects:
        base = f"{served}/api/projects/{project['id']}"
        (method,) = _json(base)["analysisMethods"]
        assert method["name"] == "spray" and "spectral" in method["embeddings"]
        named = {c["name"]: c["humanReadableName"] for c in method["categories"]}
        assert named == {g: store.classes[int(g)] for g in named} and named
        for group in named:
            for clustering in method["clusterings"]:
                query = urllib.parse.urlencode({"category": group, "clustering": clustering,
                                                "embedding": "spectral"})
                shown = _json(f"{base}/analyses/spray?{query}")
                lam = np.asarray(shown["eigenvalues"])
                assert len(lam) == 8 and np.all(np.diff(lam) <= 1e-7) and abs(lam[-1]) < 1e-6
            sample = shown["embedding"][0]["attributionIndex"]
            info = _json(f"{base}/dataset/{sample}")
            size = (info["width"], info["height"])
            _image(f"{served}{info['url']}", size)
            heatmaps = _json(f"{base}/attributions/{sample}?imageMode=attribution")["urls"]
            assert sorted(heatmaps) == sorted(colour_maps)
            for url in heatmaps.values():
                _image(f"{served}{url}", size)
                _image(f"{served}{url.replace('superimpose=False', 'superimpose=True')}", size)
        shown_all = _json(f"{base}/attributions?indices=0,1&imageMode=overlay")
        assert [a["index"] for a in shown_all] == [0, 1]


def test_export_adds_links_not_copies_where_virelay_can_draw_the_inputs(
        exported: Exported) -> None:
    folder, out = exported
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    store = open_store(folder)
    n, c, h, w = store.arrays(None, ("data",))["data"].shape
    with h5py.File(out / "input.h5", "r") as f:
        linked = "pixels" not in f
        assert f["data"].is_virtual and f["data"].shape == (n, 3, h, w)
    if folder.name == "mnist":  # [0, 1] digits: only links, a few KiB in all
        assert linked and sum(sizes.values()) < 40_000, sizes
    else:  # normalised RGB: one uint8 copy of the pixels, the rest links
        assert not linked and n * c * h * w < sizes["input.h5"] < n * c * h * w + 20_000
    for path in out.glob("*.h5"):
        with h5py.File(path, "r") as f:
            for name in f:
                link = f.get(name, getlink=True)
                targets = ([link.filename] if isinstance(link, h5py.ExternalLink) else
                           [s.file_name for s in f[name].virtual_sources()]
                           if f[name].is_virtual else [])
                assert all(not Path(t).is_absolute() for t in targets), (path, name, targets)
    print(f"\n{folder.name}: export adds {sum(sizes.values())} bytes: {sizes}")
