"""``--model`` specs beyond lumos's own: ``timm:NAME`` and Hugging Face models, offline.

Every weight file here is written by the test itself: a ``--weights`` file, a Hugging Face hub
cache laid out as ``huggingface_hub`` lays it out (``models--ORG--NAME/refs/main`` and
``snapshots/<commit>/``), and ``save_pretrained`` folders. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lumos
from lumos.cli import main
from lumos.errors import UserError
from lumos.models.specs import resolve

timm = pytest.importorskip("timm")
transformers = pytest.importorskip("transformers")

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _timm_state(num_classes: int = 1000) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, num_classes=num_classes)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def _hub_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> Path:
    """Lay ``files`` (name -> source file) out as repo ``repo_id`` in hub cache ``cache``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for name, source in files.items():
        (snapshot / name).write_bytes(source.read_bytes())
    return snapshot


def _hf_vit(folder: Path) -> Path:
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64, image_size=32, patch_size=8,
                                    num_labels=3, id2label={0: "cat", 1: "dog", 2: "fox"},
                                    label2id={"cat": 0, "dog": 1, "fox": 2})
    torch.manual_seed(0)
    transformers.ViTForImageClassification(config).eval().save_pretrained(folder)
    return folder


def test_timm_name_with_a_weights_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file(_timm_state(num_classes=7), str(tmp_path / "w.safetensors"))
    clf, fingerprint = resolve("timm:test_vit", tmp_path / "w.safetensors")
    assert clf.name == "timm:test_vit" and clf.size == 160 and len(clf.classes) == 7
    assert fingerprint["weights"] == "w.safetensors" and len(fingerprint["digest"]) == 16
    assert not clf.model.training
    with pytest.raises(UserError, match=r"does not fit timm:test_resnet"):
        resolve("timm:test_resnet", tmp_path / "w.safetensors")


def test_timm_name_from_the_hugging_face_cache(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.torch import save_file

    save_file(_timm_state(), str(tmp_path / "model.safetensors"))
    cache = tmp_path / "hub"
    _hub_cache(cache, "timm/test_vit.r160_in1k", {"model.safetensors": tmp_path /
                                                  "model.safetensors"})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    clf, fingerprint = resolve("timm:test_vit")
    assert len(clf.classes) == 1000 and clf.classes[0] == "tench"
    want = _timm_state()["head.weight"]
    got = dict(clf.model.named_parameters())["head.weight"]
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert fingerprint["weights"] == "model.safetensors"


def test_timm_errors_are_one_clear_line(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError, match=r"no pretrained weights for timm:test_vit on this "
                                        r"machine \(lumos does not download\)"):
        resolve("timm:test_vit")
    with pytest.raises(UserError, match=r"timm has no model 'no_such_net'"):
        resolve("timm:no_such_net")


def test_hugging_face_folder_and_cached_hub_id(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _hf_vit(tmp_path / "my-vit")
    clf, fingerprint = resolve(str(folder))
    assert clf.classes == ["cat", "dog", "fox"] and clf.size == 32 and clf.name == "my-vit"
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    scores = clf.model(x)
    assert isinstance(scores, torch.Tensor) and scores.shape == (2, 3)
    relevance = lumos.LRP(clf.model).attribute(x, target=1)
    assert relevance.shape == x.shape and bool(torch.isfinite(relevance).all())

    cache = tmp_path / "hub"
    _hub_cache(cache, "someone/tiny-vit", {p.name: p for p in folder.iterdir()})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    cached, cached_print = resolve("hf:someone/tiny-vit")
    assert cached.classes == clf.classes and cached_print["digest"] == fingerprint["digest"]
    torch.testing.assert_close(cached.model(x), scores)
    with pytest.raises(UserError, match=r"not in the Hugging Face cache .*does not download"):
        resolve("hf:someone/missing")
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "config.json").write_text("{}")
    with pytest.raises(UserError, match=r"is not a Hugging Face image classifier"):
        resolve(str(tmp_path / "not-a-model"))


def test_cli_explains_with_timm_and_hugging_face_models(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    from safetensors.torch import save_file

    Image.fromarray(np.full((40, 40, 3), 128, dtype=np.uint8)).save(tmp_path / "grey.png")
    folder = _hf_vit(tmp_path / "vit")
    assert main(["explain", "--model", str(folder), "--method", "lrp:epsilon-plus",
                 str(tmp_path / "grey.png"), "--out", str(tmp_path / "hf")]) == 0
    assert Image.open(tmp_path / "hf" / "grey-lrp-epsilon-plus.png").size == (32, 32)
    save_file(_timm_state(num_classes=4), str(tmp_path / "w.safetensors"))
    assert main(["explain", "--model", "timm:test_vit", "--weights",
                 str(tmp_path / "w.safetensors"), "--method", "gradient",
                 str(tmp_path / "grey.png"), "--out", str(tmp_path / "timm")]) == 0
    assert Image.open(tmp_path / "timm" / "grey-gradient.png").size == (160, 160)
    out = capsys.readouterr().out
    assert "grey.png: top-1" in out


def test_dataset_store_with_a_hugging_face_folder(tmp_path: Path) -> None:
    folder = _hf_vit(tmp_path / "vit")
    data = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (data / name).mkdir(parents=True)
        for k in range(2):
            pixels = rng.integers(0, 255, size=(36, 36, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(data / name / f"{k}.png")
    assert main(["explain-dataset", "--model", str(folder), "--dataset", f"folder:{data}",
                 "--method", "lrp:epsilon-plus", "--out", str(tmp_path / "store"),
                 "--workers", "0", "--quiet"]) == 0
    store = lumos.open_store(tmp_path / "store")
    assert store.arrays(None)["data"].shape == (4, 3, 32, 32)
