"""Helpers that write hand-made dataset files and serve them over HTTP on 127.0.0.1."""

from __future__ import annotations

import gzip
import http.server
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


def idx_bytes(array: np.ndarray, magic: int | None = None, count: int | None = None) -> bytes:
    """An IDX file of unsigned bytes; ``magic``/``count`` override the header to corrupt it."""
    dims = list(array.shape)
    if count is not None:
        dims[0] = count
    head = (magic if magic is not None else 0x0800 + array.ndim).to_bytes(4, "big")
    head += b"".join(int(d).to_bytes(4, "big") for d in dims)
    return head + array.astype(np.uint8).tobytes()


def digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            (np.arange(n) % 10).astype(np.uint8))


def write_mnist(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True) -> None:
    """The four official files with random content under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = digits(n, seed)
        for kind, array, dim in (("images", images, 3), ("labels", labels, 1)):
            name = f"{prefix}-{kind}-idx{dim}-ubyte"
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (folder / name).write_bytes(data)


IMAGENETTE_WNIDS = ["n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"]


def jpeg(label: int, mode: str = "RGB") -> bytes:
    color = (25 * label, 255 - 25 * label, 128)
    image = Image.new("RGB", (12, 9), color)
    if mode != "RGB":
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format="JPEG" if mode in ("RGB", "L", "CMYK") else "PNG")
    return buf.getvalue()


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def imagenette_tarball(path: Path, base: str = "imagenette2-160", per_class: int = 2) -> Path:
    """A tiny tarball in the official layout: base/{train,val}/<wnid>/*.JPEG."""
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "val"):
            for label, wnid in enumerate(IMAGENETTE_WNIDS):
                for k in range(per_class):
                    mode = "L" if k == 1 else ("CMYK" if k == 2 else "RGB")
                    add_file(tar, f"{base}/{split}/{wnid}/{wnid}_{k}.JPEG", jpeg(label, mode))
        add_file(tar, f"{base}/noisy_imagenette.csv", b"path,label\n")
    return path


@dataclass
class Served:
    """What the local server serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_first: set[str] = field(default_factory=set)  # paths whose first GET breaks midway
    ignore_range: bool = False
    ranges: list[str | None] = field(default_factory=list)
    on_request: list[object] = field(default_factory=list)  # callbacks run as each GET arrives

    def url(self, base: str, name: str) -> str:
        return f"{base}/{name}"


def _handler(served: Served) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            rng = self.headers.get("Range")
            served.ranges.append(rng)
            for callback in served.on_request:
                callback()  # type: ignore[operator]
            if name not in served.files:
                self.send_error(404)
                return
            data = served.files[name]
            start = 0
            if rng and not served.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if name in served.drop_first:
                served.drop_first.discard(name)
                self.wfile.write(data[start: start + len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data[start:])

    return Handler
