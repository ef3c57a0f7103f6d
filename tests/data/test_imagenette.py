"""Imagenette / Imagewoof from a tiny tarball in the official layout; hostile tar members."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch
from datafix import IMAGENETTE_WNIDS, add_file, imagenette_tarball, jpeg

from lumos.data import DatasetError, DatasetNotFoundError, Imagenette, Imagewoof
from lumos.data.download import UnsafeArchiveError, extract_tar
from lumos.data.transforms import eval_transform
from lumos.models.imagenet_classes import IMAGENET_CLASSES


def _extracted(tmp_path: Path, per_class: int = 3) -> Path:
    archive = imagenette_tarball(tmp_path / "imagenette2-160.tgz", per_class=per_class)
    root = tmp_path / "data"
    assert extract_tar(archive, root) == [root / "imagenette2-160"]
    return root


def test_reads_official_layout_as_rgb(tmp_path: Path) -> None:
    root = _extracted(tmp_path)
    train = Imagenette(root, split="train", size="160")
    val = Imagenette(root, split="val", size="160px")
    assert len(train) == 30 and len(val) == 30
    assert train.classes[:2] == ["tench", "English springer"] and train.wnids == IMAGENETTE_WNIDS
    labels = [label for _, label in train.samples]
    assert labels == sorted(labels) and set(labels) == set(range(10))
    for i in (0, 1, 2):  # RGB, grayscale and CMYK JPEGs all come back as 3 channels
        image, label = train[i]
        assert image.shape == (3, 9, 12) and label == 0 and image.dtype == torch.float32
    gray, _ = train[1]
    assert torch.allclose(gray[0], gray[1]) and torch.allclose(gray[1], gray[2])


def test_transform_receives_pil_rgb(tmp_path: Path) -> None:
    root = _extracted(tmp_path, per_class=1)
    ds = Imagenette(root, size="160", transform=eval_transform(8, resize=9))
    image, _ = ds[0]
    assert image.shape == (3, 8, 8)
    modes = []
    Imagenette(root, size="160", transform=lambda im: modes.append(im.mode))[0]
    assert modes == ["RGB"]


def test_class_names_match_imagenet_indices() -> None:
    for cls in (Imagenette, Imagewoof):
        for name, index in cls.wnid_info.values():
            assert IMAGENET_CLASSES[index].lower() == name.lower()
        assert list(cls.wnid_info) == sorted(cls.wnid_info)  # ImageNet orders by wnid


def test_missing_dataset_names_path_and_url(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        Imagewoof(tmp_path, size="320")
    message = str(err.value)
    assert str(tmp_path / "imagewoof2-320" / "train") in message
    assert "https://s3.amazonaws.com/fast-ai-imageclas/imagewoof2-320.tgz" in message


def test_wrong_dataset_and_missing_class_are_clear(tmp_path: Path) -> None:
    root = _extracted(tmp_path, per_class=1)
    (root / "imagewoof2-160").symlink_to(root / "imagenette2-160")
    with pytest.raises(DatasetError, match="not Imagewoof classes"):
        Imagewoof(root, size="160")
    (root / "imagenette2-160" / "val" / IMAGENETTE_WNIDS[3]).rename(tmp_path / "elsewhere")
    with pytest.raises(DatasetError, match=r"class folder missing.*chain saw"):
        Imagenette(root, split="val", size="160")


def test_undecodable_image_names_the_file(tmp_path: Path) -> None:
    root = _extracted(tmp_path, per_class=1)
    bad = root / "imagenette2-160" / "train" / IMAGENETTE_WNIDS[0] / "broken.JPEG"
    bad.write_bytes(b"not a jpeg")
    ds = Imagenette(root, size="160")
    index = [p for p, _ in ds.samples].index(bad)
    with pytest.raises(DatasetError, match=r"broken\.JPEG"):
        ds[index]


@pytest.mark.parametrize(("split", "size"), [("test", "160"), ("train", "224")])
def test_bad_arguments(tmp_path: Path, split: str, size: str) -> None:
    with pytest.raises(ValueError, match=r"split|size"):
        Imagenette(tmp_path, split=split, size=size)


def _hostile(path: Path, member: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w") as tar:
        add_file(tar, "imagenette2-160/train/n01440764/a.JPEG", jpeg(0))
        tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(("member", "message"), [
    (_member("/etc/evil"), "absolute path"),
    (_member("imagenette2-160/../../evil"), r"'\.\.'"),
    (_member("imagenette2-160/link", tarfile.SYMTYPE, "/etc/passwd"), "points outside"),
    (_member("imagenette2-160/link", tarfile.SYMTYPE, "../../outside"), "points outside"),
    (_member("imagenette2-160/hard", tarfile.LNKTYPE, "../outside"), "points outside"),
    (_member("imagenette2-160/dev", tarfile.CHRTYPE), "device"),
])
def test_hostile_members_are_refused_and_nothing_is_written(
        tmp_path: Path, member: tarfile.TarInfo, message: str) -> None:
    archive = _hostile(tmp_path / "evil.tar", member)
    target = tmp_path / "target"
    with pytest.raises(UnsafeArchiveError, match=message):
        extract_tar(archive, target)
    assert list(target.iterdir()) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


def test_links_inside_the_target_are_fine(tmp_path: Path) -> None:
    archive = _hostile(tmp_path / "ok.tar", _member(
        "imagenette2-160/train/n01440764/b.JPEG", tarfile.SYMTYPE, "a.JPEG"))
    extract_tar(archive, tmp_path / "t")
    assert (tmp_path / "t/imagenette2-160/train/n01440764/b.JPEG").read_bytes() == jpeg(0)


def test_truncated_archive_leaves_nothing(tmp_path: Path) -> None:
    archive = imagenette_tarball(tmp_path / "a.tgz")
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(UnsafeArchiveError, match="not a readable tar"):
        extract_tar(archive, tmp_path / "t")
    assert list((tmp_path / "t").iterdir()) == []


def test_existing_folder_is_not_overwritten(tmp_path: Path) -> None:
    root = _extracted(tmp_path, per_class=1)
    with pytest.raises(FileExistsError, match="already exists"):
        extract_tar(tmp_path / "imagenette2-160.tgz", root)
