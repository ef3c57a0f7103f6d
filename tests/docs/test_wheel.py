"""The sdist and the wheel build, the wheel is clean, and it works installed on its own.

One fresh virtual environment gets torch, torchvision and the wheel (not editable, with the
``analysis`` extra that ``lumos spray`` needs, without the dev extra); the commands then run from
a folder outside the repository, so nothing of the source tree can stand in for the package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib
from docfix import REPO


def _run(args: list[str | Path], cwd: Path, timeout: float = 900) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{args}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _fixtures(work: Path) -> tuple[Path, Path, Path]:
    """A small RGB checkpoint, a photo that scikit-image ships, a tiny store (dev side)."""
    import skimage

    import lumos
    from lumos.models import save_checkpoint
    from lumos.models.zoo import build

    ckpt = save_checkpoint(work / "ckpt" / "model.safetensors", build("resnet18", n_classes=3),
                           architecture={"name": "resnet18", "kwargs": {"n_classes": 3}},
                           classes=["cat", "cup", "rocket"],
                           normalization={"mean": [0.485, 0.456, 0.406],
                                          "std": [0.229, 0.224, 0.225]},
                           extra={"input_size": 64})
    photo = Path(skimage.__file__).parent / "data" / "chelsea.png"
    store = work / "store"
    lumos.explain_dataset("mnist5k-cnn", "mnist-5k", ["gradient"], store, split="test",
                          limit=40, progress=False)
    return ckpt, photo, store


@pytest.mark.slow
def test_wheel_builds_clean_installs_alone_and_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", dist, REPO], tmp_path)
    wheel = next(dist.glob("lumos-*.whl"))
    assert next(dist.glob("lumos-*.tar.gz"))
    _run([Path(sys.executable).parent / "check-wheel-contents", wheel], tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    for shipped in ("lumos/explorer/assets/app.js", "lumos/viz/templates/report.html",
                    "lumos/experiments/paper.toml", "lumos/py.typed"):
        assert shipped in names, f"{shipped} is not in the wheel"
    assert not [n for n in names if n.startswith(("tests/", "docsite/", "docs/"))]

    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    _run([py, "-m", "pip", "install", "--quiet", "torch==2.14.1", "torchvision==0.29.1"],
         tmp_path)
    _run([py, "-m", "pip", "install", "--quiet", f"{wheel}[analysis]"], tmp_path)
    lumos_cmd = env / "bin" / "lumos"

    work = tmp_path / "work"
    work.mkdir()
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert _run([lumos_cmd, "--version"], work).strip() == f"lumos {version}"
    location = _run([py, "-c", "import lumos; print(lumos.__file__)"], work)
    assert str(env) in location and str(REPO) not in location

    ckpt, photo, store = _fixtures(work)
    out = _run([lumos_cmd, "explain", "--model", ckpt, "--method", "lrp:epsilon-plus",
                "--method", "gradient", photo, "--out", work / "explained"], work)
    assert "chelsea.png: top-1" in out
    page = (work / "explained" / "explain.html").read_text(encoding="utf-8")
    assert "<style>" in page and (work / "explained" / "chelsea-lrp-epsilon-plus.png").is_file()
    assert "lumos[plots]" in page  # no matplotlib here: the page says what the plots need

    out = _run([lumos_cmd, "spray", store, "--method", "gradient", "--label", "0", "--label",
                "1", "--html", work / "spray.html", "--quiet"], work)
    html = (work / "spray.html").read_text(encoding="utf-8")
    assert "analysis-gradient.h5" in out and "<script" in html and len(html) > 10_000

    config = _run([lumos_cmd, "reproduce", "--dataset", "mnist", "--data-dir", work,
                   "--print-config"], work)
    assert "[imagewoof]" in config
