"""``lumos demo``: the embedded default study, offline, in a few minutes on a laptop."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("train the CNN on the embedded MNIST digits, explain digits and photos with IG and LRP, "
        "measure them and write an HTML report")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lumos demo``."""
    parser.add_argument("--out", type=Path, default=Path("lumos-out"),
                        help="folder for report.html and the heatmap PNGs (default: lumos-out)")
    parser.add_argument("--fast", action="store_true",
                        help="reduced settings (fewer digits, epochs and steps), for a quick look")


def run(args: argparse.Namespace) -> int:
    """Run the demo; prints the report's path on stdout."""
    import torch

    from lumos.experiments.demo import DemoSettings, run_demo

    device = torch.device(args.device)  # lumos.cli.main checked it can be used here
    settings = DemoSettings.fast() if args.fast else DemoSettings()
    command = ("lumos demo" + (" --fast" if args.fast else "")
               + (f" --device {args.device}" if device.type != "cpu" else ""))
    path = run_demo(args.out, settings, seed=args.seed, quiet=args.quiet, command=command,
                    device=device)
    print(path)
    return 0
