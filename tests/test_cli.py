"""The ``lumos`` command line: usage errors are one line with exit 2; reproduce and explain run
end to end on tiny fixtures written here (no download, no real data)."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lumos.cli import main

TINY = """
[study]
batch_size = 16
[mnist]
epochs = 1
explain = 12
methods = ["ig", "lrp:epsilon-plus", "gradient"]
ig_max_steps = 16
ig_tolerance = 0.1
flip_steps = 4
family_n = 4
"""


def _idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as an IDX file, gzipped, as the official MNIST files are."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def _mnist_fixture(root: Path, n_train: int = 80, n_test: int = 30) -> None:
    """Digits drawn as class-dependent bars, so a CNN learns them in one epoch."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 30, size=(n, 28, 28))
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c: 4 + 2 * c, 4:24] = 255
        _idx(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz", images)
        _idx(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", labels)


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.slow
def test_reproduce_mnist_end_to_end_and_resumes(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _mnist_fixture(tmp_path / "data")
    (tmp_path / "tiny.toml").write_text(TINY)
    argv = ["reproduce", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--out",
            str(tmp_path / "out"), "--config", str(tmp_path / "tiny.toml"), "--quiet"]
    assert main(argv) == 0
    report = Path(capsys.readouterr().out.strip())
    assert report == tmp_path / "out" / "report.html"
    html = report.read_text()
    assert html.count('data-gallery="mnist" data-kind="ig"') == 10
    assert html.count('data-gallery="mnist" data-kind="lrp"') == 10
    assert "MoRF AOPC" in html and "epochs = 1" in html
    for family in ("Faithfulness", "Robustness", "Complexity", "Randomisation", "Axiomatic"):
        assert f"{family} (4 inputs)" in html  # one table per family
    results = json.loads((tmp_path / "out" / "mnist" / "results.json").read_text())
    assert set(results["methods"]) == {"ig", "lrp:epsilon-plus", "gradient"}
    stamp = (tmp_path / "out" / "mnist" / "results.safetensors").stat().st_mtime_ns
    argv.remove("--quiet")
    assert main(argv) == 0                       # second run: both stages skipped
    err = capsys.readouterr().err
    assert "train: done already" in err and "evaluate: done already" in err
    assert "metrics by family: done already" in err
    assert (tmp_path / "out" / "mnist" / "results.safetensors").stat().st_mtime_ns == stamp


def test_reproduce_without_data_fails_in_one_line(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(capsys, ["reproduce", "--dataset", "mnist", "--data-dir",
                             str(tmp_path / "none")],
                    str(tmp_path / "none" / "mnist"), "--download")


def test_reproduce_bad_config_is_one_line(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[mnist]\nepochs = 'many'\n")
    _one_line_error(capsys, ["reproduce", "--dataset", "mnist", "--data-dir", str(tmp_path),
                             "--config", str(bad)], "mnist.epochs must be int")
    bad.write_text("[mnist\n")
    _one_line_error(capsys, ["reproduce", "--dataset", "mnist", "--data-dir", str(tmp_path),
                             "--config", str(bad)], "not valid TOML")
    bad.write_text("[cifar]\nepochs = 1\n")
    _one_line_error(capsys, ["reproduce", "--dataset", "mnist", "--data-dir", str(tmp_path),
                             "--config", str(bad)], "unknown table [cifar]")


def test_print_config_is_the_packaged_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--dataset", "all", "--data-dir", ".", "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "[imagewoof]" in text and 'model = "mnist-cnn"' in text


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["reproduce", "--dataset", "cifar", "--data-dir", "."])
    assert stop.value.code == 2
    assert "invalid choice: 'cifar'" in capsys.readouterr().err


def _checkpoint(tmp_path: Path) -> Path:
    from lumos.models.checkpoint import save_checkpoint
    from lumos.models.cnn import MnistCNN

    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "cnn.safetensors", MnistCNN().eval(),
                           architecture={"name": "mnist-cnn", "kwargs": {}}, dataset="mnist",
                           classes=[str(d) for d in range(10)],
                           normalization={"mean": [0.0], "std": [1.0]})


def test_explain_own_images_with_a_checkpoint(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _checkpoint(tmp_path)
    digit = np.zeros((40, 40), dtype=np.uint8)
    digit[8:32, 18:22] = 255
    Image.fromarray(digit).save(tmp_path / "one.png")
    assert main(["explain", "--model", str(ckpt), "--method", "ig", "--method",
                 "lrp:epsilon-plus", "--target", "1", str(tmp_path / "one.png"), "--out",
                 str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("one.png: top-1 ") and "explained 1" in out[0]
    assert out[-1] == str(tmp_path / "out" / "explain.html")
    for name in ("one-ig.png", "one-ig-overlay.png", "one-lrp-epsilon-plus.png"):
        assert Image.open(tmp_path / "out" / name).size == (28, 28)


def test_explain_errors_are_one_line(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _checkpoint(tmp_path)
    (tmp_path / "x.png").write_bytes(b"not a png")
    _one_line_error(capsys, ["explain", "--model", str(ckpt), str(tmp_path / "x.png")],
                    "cannot read image")
    _one_line_error(capsys, ["explain", "--model", str(ckpt), str(tmp_path / "nope.png")],
                    "not found")
    _one_line_error(capsys, ["explain", "--model", str(ckpt), "--method", "lrp:magic",
                             str(tmp_path / "x.png")], "unknown method 'lrp:magic'")
    _one_line_error(capsys, ["explain", "--model", str(tmp_path / "missing.safetensors"),
                             str(tmp_path / "x.png")], "does not exist")
    _one_line_error(capsys, ["explain", "--model", "no-such-net", str(tmp_path / "x.png")],
                    "neither a file")
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "ok.png")
    _one_line_error(capsys, ["explain", "--model", str(ckpt), "--target", "10",
                             str(tmp_path / "ok.png")], "--target 10 is out of range")


def test_method_keys_and_config_round_trip() -> None:
    from lumos.experiments import config, methods, paper

    assert [methods.parse(k).kind for k in ("ig", "lrp", "lrp:epsilon-plus", "smoothgrad")] == [
        "ig", "lrp", "lrp", "baseline"]
    assert methods.parse("LRP").key == "lrp:epsilon-gamma-box"
    with pytest.raises(ValueError, match="choose one of ig, lrp:epsilon-plus"):
        methods.parse("lrp:nope")
    domain = methods.Domain.from_normalization([0.5], [0.25])
    assert domain.low.item() == -2.0 and domain.high.item() == 2.0
    cfg = paper.default_config()
    assert config.loads(config.dumps(cfg)) == cfg
    merged = config.merge({"lr": 0.1, "n": 1}, {"lr": 1}, "t")
    assert merged == {"lr": 1.0, "n": 1} and isinstance(merged["lr"], float)


@pytest.mark.parametrize("command", [["train", "--dataset", "mnist", "--out", "OUT"],
                                     ["evaluate"], ["explain", "a.png", "--model", "m.pt"]])
def test_every_command_checks_its_device_first(command: list[str], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main([str(out) if a == "OUT" else a for a in command] + ["--device", "gpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'gpu' is not a torch device" in err[0]
    assert not out.exists()
