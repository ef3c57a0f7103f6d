"""``lumos explain-dataset``: explain a whole dataset into a resumable HDF5 store.

Run it again with the same arguments to continue after an interruption; under
``torchrun --nproc_per_node=K -m lumos explain-dataset ...`` the ranks share the work.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("explain every image of a dataset with IG / LRP into an HDF5 store (resumable, "
        "torchrun for many processes)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lumos explain-dataset``."""
    parser.set_defaults(device=None)
    from lumos.commands import MODEL_HELP

    parser.add_argument("--model", required=True, help=MODEL_HELP)
    parser.add_argument("--weights", type=Path, default=None,
                        help="local state dict (safetensors or .pt) for a torchvision/timm name")
    parser.add_argument("--dataset", required=True,
                        help="mnist-5k, mnist, fashion-mnist, imagenette, imagewoof, or "
                             "folder:DIR (DIR/<class>/*.png|jpg)")
    parser.add_argument("--method", action="append", required=True,
                        help="ig, lrp:COMPOSITE (epsilon-plus, epsilon-gamma-box, ...), gradient, "
                             "input-x-gradient, smoothgrad; repeat for several")
    parser.add_argument("--out", type=Path, required=True, help="the store's folder")
    parser.add_argument("--split", choices=("train", "test", "all"), default=None,
                        help="default: all for a plain folder, else test")
    parser.add_argument("--limit", type=int, default=None, help="only the first N samples")
    parser.add_argument("--target", default="predicted",
                        help="class to explain: predicted (default), label, or an index")
    parser.add_argument("--shard-size", type=int, default=1000,
                        help="samples per shard, the unit of resuming (default: 1000)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="stored attribution precision (default: float32)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="samples per explanation batch (default: 32; halved on CUDA OOM)")
    parser.add_argument("--workers", type=int, default=None,
                        help="data loading worker processes (default: none in memory; on "
                        "CPU one once a rank has 4 cores, else none; on a GPU up to 4)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where catalog datasets live (default: $LUMOS_DATA or ./data)")
    parser.add_argument("--download", action="store_true", help="download a missing dataset")
    parser.add_argument("--ig-tolerance", type=float, default=0.01,
                        help="IG tolerance: estimated relative map error and relative "
                             "completeness gap, both (default: 0.01)")
    parser.add_argument("--ig-max-steps", type=int, default=256,
                        help="IG gradient evaluations per sample at most (default: 256)")
    parser.add_argument("--ig-steps", type=int, default=None,
                        help="fixed IG steps (Gauss-Legendre) instead of adaptive")
    parser.add_argument("--concepts", action="append", default=[], metavar="LAYER",
                        help="also store each sample's concept relevances and activations of "
                             "this layer (a module path such as features.28, layer3 or "
                             "encoder.layers.encoder_layer_11; needs an lrp: method); repeat "
                             "for several layers, then run `lumos concepts DIR --layer LAYER`")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh if --out holds a store made with other settings")


def run(args: argparse.Namespace) -> int:
    """Explain the dataset; print a summary and the store's folder."""
    from lumos.store.pipeline import explain_dataset

    ig = ({"n_steps": args.ig_steps} if args.ig_steps else
          {"tolerance": args.ig_tolerance, "max_steps": args.ig_max_steps})
    store = explain_dataset(args.model, args.dataset, args.method, args.out, split=args.split,
                            limit=args.limit, target=args.target, shard_size=args.shard_size,
                            dtype=args.dtype, batch_size=args.batch_size, device=args.device,
                            workers=args.workers, weights=args.weights, data_dir=args.data_dir,
                            download=args.download, ig=ig, overwrite=args.overwrite,
                            progress=not args.quiet, concepts=args.concepts)
    import os

    if int(os.environ.get("RANK", 0)) != 0:
        return 0
    m = store.manifest
    if not args.quiet:
        for key, info in m["methods"].items():
            print(f"{key}: {len(store)} samples in {info['seconds']:.1f} s -> {info['file']}")
        if store.computed:
            print(f"{m['shards_total']} shards ({store.computed} computed in this run), "
                  f"{m.get('images_per_second') or 0:.1f} images/s")
        else:
            print(f"{m['shards_total']} shards, all done already: nothing to compute")
    print(store.folder)
    return 0
