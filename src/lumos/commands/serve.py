"""``lumos serve``: the local explorer page over a store directory's SpRAy analyses."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("browse a store's SpRAy analyses in a local web page: embedding scatter, clusters, "
        "input | heatmap | overlay for two methods, eigenvalues, cluster mean heatmaps")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lumos serve``."""
    parser.add_argument("directory", type=Path, metavar="DIR",
                        help="a store with analysis-<method>.h5 files (run `lumos spray`)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (8765)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; prints the page's address."""
    from lumos.analysis.layout import StoreError
    from lumos.errors import UserError
    from lumos.explorer.data import StoreView
    from lumos.explorer.server import PortBusy, make_server

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {args.port}")
    try:
        server = make_server(StoreView(args.directory), args.host, args.port)
    except (StoreError, PortBusy) as err:
        raise UserError(str(err)) from err
    port = server.server_address[1]
    print(f"lumos explorer on http://{args.host}:{port}/  (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
