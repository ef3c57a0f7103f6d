"""Downloads against a local HTTP server: checksums, resume after a drop, atomic final file."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import ClassVar

import pytest
from datafix import Served, digits, idx_bytes, imagenette_tarball

from lumos.data import MNIST, DownloadError, Imagenette
from lumos.data.download import Resource, download, fetch

PAYLOAD = bytes(range(256)) * 400  # 100 KiB, larger than one read chunk


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_download_verifies_and_renames(tmp_path: Path, http_server: tuple[str, Served]) -> None:
    base, served = http_server
    served.files["f.bin"] = PAYLOAD
    dest = download(f"{base}/f.bin", tmp_path / "f.bin", sha256=[hashlib.sha256(PAYLOAD)
                                                                .hexdigest()], progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_checksum_mismatch_is_refused(tmp_path: Path, http_server: tuple[str, Served]) -> None:
    base, served = http_server
    served.files["f.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{base}/f.bin", tmp_path / "f.bin", md5=["0" * 32], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unverified_download_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="without an md5 or sha256"):
        download("http://127.0.0.1:9/x", tmp_path / "x")


def test_dropped_connection_resumes_with_range(tmp_path: Path,
                                               http_server: tuple[str, Served]) -> None:
    base, served = http_server
    served.files["f.bin"] = PAYLOAD
    served.drop_first.add("f.bin")
    dest = tmp_path / "f.bin"
    seen: list[tuple[bool, bool]] = []
    part = tmp_path / "f.bin.part"
    served.on_request.append(lambda: seen.append((dest.exists(), part.exists())))
    download(f"{base}/f.bin", dest, md5=[_md5(PAYLOAD)], progress=False)
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    # when the resuming request arrives, half the bytes sit in .part and the final name is absent
    assert seen == [(False, False), (False, True)]
    assert served.ranges == [None, f"bytes={len(PAYLOAD) // 2}-"]


def test_interrupted_call_keeps_part_and_next_call_resumes(
        tmp_path: Path, http_server: tuple[str, Served]) -> None:
    base, served = http_server
    served.files["f.bin"] = PAYLOAD
    served.drop_first.add("f.bin")
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="run again to resume"):
        download(f"{base}/f.bin", dest, md5=[_md5(PAYLOAD)], progress=False, retries=0)
    assert not dest.exists()
    assert (tmp_path / "f.bin.part").stat().st_size == len(PAYLOAD) // 2
    download(f"{base}/f.bin", dest, md5=[_md5(PAYLOAD)], progress=False, retries=0)
    assert dest.read_bytes() == PAYLOAD and not (tmp_path / "f.bin.part").exists()
    assert served.ranges[-1] == f"bytes={len(PAYLOAD) // 2}-"


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path,
                                                http_server: tuple[str, Served]) -> None:
    base, served = http_server
    served.files["f.bin"] = PAYLOAD
    served.ignore_range = True
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:1000])
    download(f"{base}/f.bin", tmp_path / "f.bin", md5=[_md5(PAYLOAD)], progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_complete_part_file_is_finished_without_refetching(
        tmp_path: Path, http_server: tuple[str, Served]) -> None:
    base, served = http_server
    served.files["f.bin"] = PAYLOAD
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD)
    download(f"{base}/f.bin", tmp_path / "f.bin", md5=[_md5(PAYLOAD)], progress=False)
    assert (tmp_path / "f.bin").read_bytes() == PAYLOAD


def test_fetch_tries_mirrors_and_skips_valid_files(tmp_path: Path,
                                                   http_server: tuple[str, Served]) -> None:
    base, served = http_server
    served.files["f.bin"] = PAYLOAD
    res = Resource("f.bin", (f"{base}/missing/f.bin", f"{base}/f.bin"), md5=(_md5(PAYLOAD),))
    assert fetch(res, tmp_path, progress=False).read_bytes() == PAYLOAD
    count = len(served.ranges)
    fetch(res, tmp_path, progress=False)
    assert len(served.ranges) == count  # already there and valid: no request
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(Resource("g", (f"{base}/g",), md5=("0" * 32,)), tmp_path, progress=False)


def test_mnist_download_true(tmp_path: Path, http_server: tuple[str, Served]) -> None:
    base, served = http_server
    md5 = {}
    for prefix, n in (("train", 20), ("t10k", 10)):
        images, labels = digits(n)
        for name, array in ((f"{prefix}-images-idx3-ubyte.gz", images),
                            (f"{prefix}-labels-idx1-ubyte.gz", labels)):
            served.files[name] = gzip.compress(idx_bytes(array), mtime=0)
            md5[name] = _md5(served.files[name])

    class LocalMNIST(MNIST):
        mirrors: ClassVar[tuple[str, ...]] = (f"{base}/",)

    LocalMNIST.md5 = md5
    ds = LocalMNIST(tmp_path, train=False, download=True)
    assert len(ds) == 10 and len(list((tmp_path / "mnist").iterdir())) == 4


def test_imagenette_download_true(tmp_path: Path, http_server: tuple[str, Served]) -> None:
    base, served = http_server
    archive = imagenette_tarball(tmp_path / "src.tgz", per_class=1)
    served.files["imagenette2-160.tgz"] = archive.read_bytes()
    served.drop_first.add("imagenette2-160.tgz")

    class LocalImagenette(Imagenette):
        md5: ClassVar[dict[str, tuple[str, ...]]] = {"160": (_md5(archive.read_bytes()),)}

        @classmethod
        def url(cls, size: str = "full") -> str:
            return f"{base}/imagenette2-160.tgz"

    root = tmp_path / "root"
    ds = LocalImagenette(root, split="val", size="160", download=True)
    assert len(ds) == 10 and ds[0][0].shape[0] == 3
    assert sorted(p.name for p in root.iterdir()) == ["imagenette2-160", "imagenette2-160.tgz"]
