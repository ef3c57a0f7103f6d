"""The ``lumos`` command line: one sub-command per module in :mod:`lumos.commands`.

Each command module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and a one-line
``HELP``. Expected failures (missing data, a bad checkpoint, a usage error) are reported as one
line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from lumos.errors import UserError

__all__ = ["COMMANDS", "UserError", "build_parser", "main"]

# name of the sub-command -> module under lumos.commands
COMMANDS: dict[str, str] = {
    "concepts": "concepts",
    "demo": "demo",
    "evaluate": "evaluate",
    "explain": "explain",
    "explain-dataset": "explain_dataset",
    "export": "export",
    "reproduce": "reproduce",
    "serve": "serve",
    "spray": "spray",
    "train": "train",
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command."""
    from lumos import __version__

    parser = argparse.ArgumentParser(
        prog="lumos",
        description="Explain image classifiers with Integrated Gradients and LRP, "
                    "and measure how faithful the explanations are.")
    parser.add_argument("--version", action="version", version=f"lumos {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"lumos.commands.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument("--device", default="cpu", help="torch device to run on (default: cpu)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
        p.add_argument("--quiet", action="store_true", help="no progress bars or summaries")
        p.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (default: torch's choice)")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lumos`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        from lumos.commands import resolve_device

        if args.device is not None:  # None: the command picks (explain-dataset: per rank)
            resolve_device(args.device)  # one clear line for a device this machine lacks
        return int(args._run(args) or 0)
    except (UserError, FileNotFoundError) as err:
        print(f"lumos {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lumos: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
