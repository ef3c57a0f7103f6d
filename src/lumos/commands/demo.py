"""``lumos demo``: the embedded default study, offline, in a few minutes on a laptop."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

HELP = ("train the CNN on the embedded MNIST digits, explain digits and photos with IG and LRP, "
        "measure them and write an HTML report")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lumos demo``."""
    parser.add_argument("--out", type=Path, default=Path("lumos-out"),
                        help="folder for report.html and the heatmap PNGs (default: lumos-out)")
    parser.add_argument("--fast", action="store_true",
                        help="reduced settings (fewer digits, epochs and steps), for a quick look")
    parser.add_argument("--clever-hans", action="store_true",
                        help="instead: train with a mark planted on some digits of one class, "
                             "explain them with LRP and IG, find the marked ones with SpRAy "
                             "(writes OUT/store/spray.html; see `lumos serve OUT/store`)")


def run(args: argparse.Namespace) -> int:
    """Run the demo; prints the report's path on stdout."""
    import torch

    from lumos.experiments.demo import DemoSettings, run_demo

    device = torch.device(args.device)  # lumos.cli.main checked it can be used here
    if args.clever_hans:
        return _clever_hans(args, device)
    settings = DemoSettings.fast() if args.fast else DemoSettings()
    command = ("lumos demo" + (" --fast" if args.fast else "")
               + (f" --device {args.device}" if device.type != "cpu" else ""))
    path = run_demo(args.out, settings, seed=args.seed, quiet=args.quiet, command=command,
                    device=device)
    print(path)
    return 0


def _clever_hans(args: argparse.Namespace, device: torch.device) -> int:
    """``lumos demo --clever-hans``: print the adjusted Rand index per method and the page."""
    from lumos.experiments.clever_hans import CleverHansSettings, run_clever_hans

    settings = CleverHansSettings(epochs=3) if args.fast else CleverHansSettings()
    result = run_clever_hans(args.out, settings, seed=args.seed, quiet=args.quiet,
                             device=device)
    acc = result["accuracy"]
    print(f"held-out accuracy {acc['clean']:.3f}; digit {settings.digit}: "
          f"{acc['digit_plain']:.3f} unmarked, {acc['digit_marked']:.3f} marked; other digits "
          f"with the mark: {acc['others_marked']:.3f}")
    for key, r in result["methods"].items():
        c = r["marked_cluster"]
        print(f"{key}: eigengap k = {r['k']}, ARI {r['ari']:.3f} (marked vs unmarked); "
              f"cluster {c} holds {r['cluster_sizes'][c]} digits, {r['marked_share'][c]:.0%} "
              f"of them marked, {r['border_fraction'][str(c)]:.0%} of |relevance| on the "
              "border")
    local = result["localisation"]
    print(f"localisation on the {local['marked_digits']} marked digits (mask: the mark; "
          f"* best):\n{local['table']}\nmost relevance on the mark: {local['most_on_mark']}")
    concept = result.get("concept")
    if concept:
        print(f"{concept['method']} concepts of {concept['layer']}: concept {concept['concept']} "
              f"has the largest mean relevance on the marked digits "
              f"({concept['mean_relevance_marked']:+.3f}, unmarked "
              f"{concept['mean_relevance_unmarked']:+.3f}); {concept['marked_in_top']:.0%} of "
              f"its top {len(concept['top'])} references by relevance carry the mark "
              f"({concept['marked_in_top_share']:.0%} ranked by its share of each digit's "
              f"relevance) "
              f"(see `lumos serve {args.out / 'store'}`, concepts)")
    print(result["page"])
    return 0
