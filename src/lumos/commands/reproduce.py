"""``lumos reproduce``: the whole study on real data, from a TOML config, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("reproduce the study (train, explain with IG and LRP, measure, report) on MNIST, "
        "Fashion-MNIST, Imagenette and Imagewoof; resumes finished stages")

CHOICES = ("mnist", "fashion-mnist", "imagenette", "imagewoof", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lumos reproduce``."""
    parser.add_argument("--dataset", required=True, choices=CHOICES,
                        help="which dataset to run, or all four")
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="folder with mnist/, fashion-mnist/ (IDX files) and the "
                             "imagenette2-*/imagewoof2-* folders")
    parser.add_argument("--download", action="store_true",
                        help="download missing datasets from their official URLs first")
    parser.add_argument("--out", type=Path, default=Path("lumos-out/reproduce"),
                        help="output folder; finished stages there are reused "
                             "(default: lumos-out/reproduce)")
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML file overriding the defaults (see `lumos reproduce "
                             "--print-config`)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the default configuration and exit")


def run(args: argparse.Namespace) -> int:
    """Run the study; prints the report's path."""
    from lumos.data import DatasetError, DownloadError
    from lumos.errors import UserError
    from lumos.experiments import config, paper
    from lumos.models.checkpoint import CheckpointError

    if args.print_config:
        print(config.dumps(paper.default_config()), end="")
        return 0
    try:
        cfg = paper.load_config(args.config)
    except config.ConfigError as err:
        raise UserError(str(err)) from err
    cfg["study"]["seed"] = args.seed
    datasets = list(paper.DATASETS) if args.dataset == "all" else [args.dataset]
    command = (f"lumos reproduce --dataset {args.dataset} --data-dir {args.data_dir} "
               f"--out {args.out} --seed {args.seed}"
               + (f" --config {args.config}" if args.config else ""))
    try:
        path = paper.run_study(datasets, args.data_dir, args.out, cfg, download=args.download,
                               device=args.device, quiet=args.quiet, command=command)
    except (DatasetError, DownloadError, CheckpointError) as err:
        raise UserError(str(err)) from err
    print(path)
    return 0
