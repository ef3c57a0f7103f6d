"""``lumos spray``: spectral relevance analysis (SpRAy) of the heatmaps in a store directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lumos.analysis.spray import SpraySettings

# the choices of lumos.analysis (SpraySettings checks them too), spelled out here so that
# building the parser does not import SciPy
NORMALIZATIONS, AFFINITIES, KMEANS_ON = ("l2", "sum"), ("self-tuning", "binary"), ("leading", "all")

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
    parser.add_argument("--corelay", action="store_true",
                        help="CoRelAy's SpRAy settings where lumos's differ: full-resolution "
                             "maps divided by their sum, binary kNN affinity, eigenpairs "
                             "largest in |1 - lambda|, k-means on all unit-row eigenvectors "
                             "(the options below still override)")
    parser.add_argument("--neighbors", type=int, default=None, help="k of the kNN graph (10)")
    parser.add_argument("--size", default=None, metavar="SIZE|full",
                        help="heatmaps are sum-pooled to SIZE x SIZE, or kept at full "
                             "resolution (16; --corelay: full)")
    parser.add_argument("--normalize", choices=NORMALIZATIONS, default=None,
                        help="scale each map to unit L2 norm, or divide it by its sum "
                             "(l2; --corelay: sum)")
    parser.add_argument("--affinity", choices=AFFINITIES, default=None,
                        help="kNN edge weights: self-tuning Gaussian, or 1 per edge averaged "
                             "with its reverse (self-tuning; --corelay: binary)")
    parser.add_argument("--eigen", type=int, default=None, metavar="E",
                        help="eigenpairs computed, the spectral embedding's width (32)")
    parser.add_argument("--kmeans-on", choices=KMEANS_ON, default=None,
                        help="k-means on the k leading eigenvectors, or on all of them "
                             "(leading; --corelay: all)")
    parser.add_argument("--no-umap", action="store_true",
                        help="draw the spectral embedding with t-SNE only (UMAP is slow to "
                             "start: it compiles its code on first use)")
    parser.add_argument("--clusters", default="2,3,4,5,6,8",
                        help="k-means cluster counts, comma-separated (the eigengap's is added)")
    parser.add_argument("--border", type=int, default=None,
                        help="width in pixels of the border ring (default: 1/8 of the side)")


def run(args: argparse.Namespace) -> int:
    """Analyse; print a summary per class and the analysis file's path."""
    from lumos.analysis import analyse
    from lumos.analysis.layout import StoreError
    from lumos.errors import UserError

    try:
        counts = tuple(int(c) for c in args.clusters.split(",") if c.strip())
    except ValueError as err:
        raise UserError(f"--clusters must be integers separated by commas, got "
                        f"{args.clusters!r}") from err
    if not counts or min(counts) < 2:
        raise UserError(f"--clusters needs counts of at least 2, got {args.clusters!r}")
    settings = _settings(args, counts)
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


def _settings(args: argparse.Namespace, counts: tuple[int, ...]) -> SpraySettings:
    """lumos's defaults, or CoRelAy's with ``--corelay``, overridden by the options given."""
    from lumos.analysis.spray import CORELAY, SpraySettings
    from lumos.errors import UserError

    chosen: dict[str, Any] = dict(CORELAY) if args.corelay else {}
    if args.size is not None:
        if args.size == "full":
            chosen["size"] = None
        elif args.size.isdigit() and int(args.size) > 0:
            chosen["size"] = (int(args.size), int(args.size))
        else:
            raise UserError(f"--size must be a positive integer or 'full', got {args.size!r}")
    for option, field in (("neighbors", "neighbors"), ("eigen", "n_eigen")):
        value = getattr(args, option)
        if value is not None:
            if value < 1:
                raise UserError(f"--{option} must be positive, got {value}")
            chosen[field] = value
    for option in ("normalize", "affinity", "kmeans_on"):
        if getattr(args, option) is not None:
            chosen[option] = getattr(args, option)
    return SpraySettings(**chosen, cluster_counts=counts, umap=not args.no_umap, seed=args.seed)


def _names(args: argparse.Namespace) -> list[str] | None:
    from lumos.explorer.data import class_names

    return class_names(args.directory)
