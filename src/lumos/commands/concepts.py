"""``lumos concepts``: each concept's reference samples over a store (relevance maximisation)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("rank every concept (channel) of a layer's stored concept relevances: its top samples "
        "by relevance and by activation, with their conditional heatmaps cropped to where the "
        "concept is relevant; writes DIR/concepts-<method>.h5")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lumos concepts``."""
    parser.add_argument("directory", type=Path, metavar="DIR",
                        help="a store written by `lumos explain-dataset ... --concepts LAYER`")
    parser.add_argument("--layer", required=True,
                        help="the concept layer (one given to --concepts)")
    parser.add_argument("--method", default=None, metavar="K",
                        help="the lrp: method whose concepts to use (default: the only one)")
    parser.add_argument("--top", type=int, default=8,
                        help="reference samples per concept, by relevance and by activation "
                             "(default: 8)")
    parser.add_argument("--normalize", choices=("abs", "none"), default="abs",
                        help="rank by the concept's share of the sample's summed |relevance| "
                             "(abs, zennit-crp's default) or by its raw value (none)")
    parser.add_argument("--reduce", choices=("sum", "max"), default="sum",
                        help="a concept's score in a sample: summed over its positions, or its "
                             "largest value at one position (default: sum)")
    parser.add_argument("--concept", type=int, action="append", default=None, metavar="C",
                        help="compute reference heatmaps only for this concept; repeat for "
                             "several (default: every concept; all are ranked)")
    parser.add_argument("--no-heatmaps", action="store_true",
                        help="rank only: no conditional heatmaps, no crops (no model needed)")
    parser.add_argument("--sample-top", type=int, default=8,
                        help="each sample's most relevant concepts kept (default: 8)")
    parser.add_argument("--sample-heatmaps", type=int, default=0, metavar="T",
                        help="conditional heatmaps of each sample's T most relevant concepts, "
                             "for the explorer's sample view (default: 0)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="rows (sample x concept) per pass (default: from the input size)")


def run(args: argparse.Namespace) -> int:
    """Rank, compute the heatmaps, write the concepts file; print a summary."""
    from lumos.crp.analysis import analyse
    from lumos.crp.files import concepts_file

    a = analyse(args.directory, args.layer, method=args.method, top=args.top,
                normalize=args.normalize, reduce=args.reduce, concepts=args.concept,
                heatmaps=not args.no_heatmaps, sample_top=args.sample_top,
                sample_heatmaps=args.sample_heatmaps, batch_size=args.batch_size,
                device=args.device, progress=not args.quiet)
    if not args.quiet:
        order = a.mean_relevance.argsort()[::-1][:5]
        print(f"{a.layer}: {a.channels} concepts, top {args.top} references each by relevance "
              f"and by activation ({a.method})")
        for c in order:
            print(f"  concept {c}: mean relevance {a.mean_relevance[c]:+.4g}, references "
                  f"{a.top(int(c))}")
    print(concepts_file(args.directory, a.method))
    return 0
