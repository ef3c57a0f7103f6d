"""``lumos spray``: spectral relevance analysis (SpRAy) of the heatmaps in a store directory."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("cluster each class's stored heatmaps (SpRAy: kNN graph, spectral embedding, eigengap, "
        "k-means, t-SNE) and compare methods per cluster; writes DIR/analysis-<method>.h5")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lumos spray``."""
    parser.add_argument("directory", type=Path, metavar="DIR",
                        help="a store written by `lumos explain-dataset` (<method>.h5 files)")
    parser.add_argument("--method", action="append", required=True, metavar="K",
                        help="method key (a DIR/<K>.h5 file); repeat to analyse several, each "
                             "compared with the others per cluster")
    parser.add_argument("--label", action="append", type=int, default=None, metavar="L",
                        help="analyse only this class; repeat for several (default: all)")
    parser.add_argument("--html", type=Path, default=None, metavar="OUT.html",
                        help="also write the explorer's views as one self-contained page")
    parser.add_argument("--neighbors", type=int, default=10, help="k of the kNN graph (10)")
    parser.add_argument("--size", type=int, default=16,
                        help="heatmaps are sum-pooled to SIZE x SIZE (16)")
    parser.add_argument("--clusters", default="2,3,4,5,6,8",
                        help="k-means cluster counts, comma-separated (the eigengap's is added)")
    parser.add_argument("--border", type=int, default=None,
                        help="width in pixels of the border ring (default: 1/8 of the side)")


def run(args: argparse.Namespace) -> int:
    """Analyse; print a summary per class and the analysis file's path."""
    from lumos.analysis import SpraySettings, analyse
    from lumos.analysis.layout import StoreError
    from lumos.errors import UserError

    try:
        counts = tuple(int(c) for c in args.clusters.split(",") if c.strip())
    except ValueError as err:
        raise UserError(f"--clusters must be integers separated by commas, got "
                        f"{args.clusters!r}") from err
    if not counts or min(counts) < 2:
        raise UserError(f"--clusters needs counts of at least 2, got {args.clusters!r}")
    if args.neighbors < 1 or args.size < 1:
        raise UserError("--neighbors and --size must be positive")
    settings = SpraySettings(size=(args.size, args.size), neighbors=args.neighbors,
                             cluster_counts=counts, seed=args.seed)
    methods = list(dict.fromkeys(args.method))
    try:
        for key in methods:
            path, results = analyse(args.directory, key, args.label, settings,
                                    compare=methods, border=args.border,
                                    progress=not args.quiet, class_names=_names(args))
            if not args.quiet:
                print(f"{key}:")
                for a in results:
                    print("\n".join("  " + line for line in a.summary()))
            print(path)
        if args.html is not None:
            from lumos.explorer.static import write_page

            print(write_page(args.directory, args.html, methods))
    except StoreError as err:
        raise UserError(str(err)) from err
    return 0


def _names(args: argparse.Namespace) -> list[str] | None:
    from lumos.explorer.data import class_names

    return class_names(args.directory)
