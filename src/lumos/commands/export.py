"""``lumos export virelay DIR``: ViRelAy projects over a store and its SpRAy analyses."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("write ViRelAy project files for a store's SpRAy analyses (one per method, a label map, "
        "and links that let ViRelAy draw one-channel data)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lumos export``."""
    parser.add_argument("format", choices=("virelay",),
                        help="what to export for (virelay: ViRelAy's project files)")
    parser.add_argument("directory", type=Path, metavar="DIR",
                        help="a store with analysis-<method>.h5 files (run `lumos spray`)")
    parser.add_argument("--out", type=Path, default=None, metavar="OUT",
                        help="folder of the project files (default: DIR/virelay)")


def run(args: argparse.Namespace) -> int:
    """Export; print what was written and how to open it."""
    from lumos.errors import UserError
    from lumos.store.reader import StoreError
    from lumos.store.virelay import export_virelay

    try:
        done = export_virelay(args.directory, args.out)
    except StoreError as err:
        raise UserError(str(err)) from err
    if not args.quiet:
        for key in done.skipped:
            print(f"{key}: no analysis file, no project (run `lumos spray {args.directory} "
                  f"--method {key}` to add one)")
        how = ("linked to input.h5" if done.pixels == "linked"
               else f"copied once as uint8 pixels ({done.why})")
        print(f"inputs: {how}")
        for path, size in done.files.items():
            print(f"  {path.name:<28} {_size(size):>10}")
        print(f"{len(done.files)} files, {_size(done.bytes_added)} in {done.out}")
        print("open with: virelay " + " ".join(str(p) for p in done.projects.values()))
    else:
        print(done.out)
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover
