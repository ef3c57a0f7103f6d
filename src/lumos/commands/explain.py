"""``lumos explain``: heatmaps for your own images under a checkpoint or a pretrained model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "explain your own images with IG or LRP: heatmap and overlay PNGs plus an HTML page"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lumos explain``."""
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                        help="image files (PNG, JPEG, ...)")
    from lumos.commands import MODEL_HELP

    parser.add_argument("--model", required=True, help=MODEL_HELP)
    parser.add_argument("--weights", type=Path, default=None,
                        help="local weights (safetensors or .pt state dict) for a torchvision "
                             "name or timm:NAME")
    parser.add_argument("--method", action="append", default=None,
                        help="ig, lrp:COMPOSITE (epsilon-plus, epsilon-gamma-box, "
                             "epsilon-alpha2-beta1, ...) or gradient, input-x-gradient, "
                             "smoothgrad; repeat for several (default: ig and "
                             "lrp:epsilon-gamma-box)")
    parser.add_argument("--target", type=int, default=None,
                        help="class index to explain (default: each image's top-1 class)")
    parser.add_argument("--out", type=Path, default=Path("lumos-out/explain"),
                        help="output folder (default: lumos-out/explain)")
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="IG tolerance, relative: estimated map error and completeness gap "
                             "(default: 0.02)")


def run(args: argparse.Namespace) -> int:
    """Explain every image with every method; print one line per image and the page's path."""
    from lumos.errors import UserError
    from lumos.experiments import explain_images, methods
    from lumos.models.specs import resolve

    try:
        chosen = [methods.parse(m) for m in (args.method or ["ig", "lrp:epsilon-gamma-box"])]
    except ValueError as err:
        raise UserError(str(err)) from err
    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        raise UserError(f"image file(s) not found: {', '.join(missing)}")
    clf = resolve(args.model, args.weights)[0]
    clf.model.to(args.device)
    x = explain_images.load_images(args.images, clf).to(args.device)
    n_classes = len(clf.classes)
    if args.target is not None and not 0 <= args.target < n_classes:
        raise UserError(f"--target {args.target} is out of range for {n_classes} classes")
    page, lines = explain_images.explain(clf, x, [p.name for p in args.images], chosen,
                                         args.out, args.target, _options(args), args.quiet)
    if not args.quiet:
        for line in lines:
            print(line)
    print(page)
    return 0


def _options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {"ig": {"tolerance": args.tolerance, "max_steps": 256},
            "smoothgrad": {"seed": args.seed}}
