"""Fixtures for the data tests: hand-made MNIST files and a local HTTP server."""

from __future__ import annotations

import http.server
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from datafix import Served, _handler, write_mnist


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    write_mnist(tmp_path / "mnist")
    return tmp_path


@pytest.fixture
def http_server() -> Iterator[tuple[str, Served]]:
    """A threaded HTTP server on 127.0.0.1 with Range support; yields (base_url, Served)."""
    served = Served()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
