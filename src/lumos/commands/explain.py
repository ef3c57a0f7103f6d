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
    parser.add_argument("--concepts", default=None, metavar="LAYER",
                        help="also a glocal explanation: each image's most relevant concepts "
                             "(channels) of this layer (a module path such as features.28), "
                             "each with its conditional heatmap (CRP), on the page")
    parser.add_argument("--concept-top", type=int, default=6, metavar="T",
                        help="concepts per image with --concepts (default: 6)")
    parser.add_argument("--references", type=Path, default=None, metavar="STORE",
                        help="with --concepts: a store analysed by `lumos concepts STORE "
                             "--layer LAYER`, whose reference samples show each concept")
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
    concepts = _concepts(args, chosen)
    page, lines = explain_images.explain(clf, x, [p.name for p in args.images], chosen,
                                         args.out, args.target, _options(args), args.quiet,
                                         concepts)
    if not args.quiet:
        for line in lines:
            print(line)
    print(page)
    return 0


def _concepts(args: argparse.Namespace, chosen: list[Any]) -> dict[str, Any] | None:
    """``--concepts`` settings for the page: the layer, the LRP method whose rules CRP uses
    (the first ``lrp:`` method asked for, else ``lrp:epsilon-plus``), how many, the store."""
    from lumos.errors import UserError

    if args.concepts is None:
        if args.references is not None:
            raise UserError("--references needs --concepts LAYER")
        return None
    if args.concept_top < 1:
        raise UserError(f"--concept-top must be >= 1, got {args.concept_top}")
    if args.references is not None and not (args.references / "manifest.json").is_file():
        raise UserError(f"--references {args.references} is not a lumos store")
    method = next((m.key for m in chosen if m.key.startswith("lrp:")), "lrp:epsilon-plus")
    return {"layer": args.concepts, "method": method, "top": args.concept_top,
            "store": args.references}


def _options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    return {"ig": {"tolerance": args.tolerance, "max_steps": 256},
            "smoothgrad": {"seed": args.seed}}
