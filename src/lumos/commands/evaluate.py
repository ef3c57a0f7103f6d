"""``lumos evaluate``: measure explanation methods on held-out digits, as a table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = ("measure how faithful explanation methods are (pixel flipping AOPC, insertion/deletion, "
        "infidelity, sparseness, runtime, ...) on held-out digits: methods x metrics table")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lumos evaluate``."""
    parser.add_argument("--model", default="mnist5k-cnn",
                        help="'mnist5k-cnn' (the embedded CNN, trained once and cached) or a "
                             "lumos checkpoint of a (N, 1, 28, 28) digit classifier")
    parser.add_argument("--method", action="append", default=None,
                        help="ig, lrp:COMPOSITE, gradient, input-x-gradient, smoothgrad, "
                             "random, or inverted:KEY; repeat for several (default: ig, "
                             "lrp:epsilon-plus, input-x-gradient, random)")
    parser.add_argument("--metrics", default="aopc_morf,aopc_lerf,insertion,deletion,"
                        "sparseness,runtime",
                        help="comma-separated metric names (default: %(default)s); also "
                             "infidelity, max_sensitivity, completeness")
    parser.add_argument("--n", type=int, default=200,
                        help="held-out mnist-5k test digits to use (default: 200, max 1000)")
    parser.add_argument("--batch-size", type=int, default=50, help="samples per batch")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON")
    parser.add_argument("--csv", type=Path, default=None, help="write the result as CSV")


def run(args: argparse.Namespace) -> int:
    """Evaluate; print the table on stdout (and write JSON / CSV when asked)."""
    from lumos.errors import UserError
    from lumos.data.samples import mnist5k
    from lumos.metrics.evaluate import METRICS, evaluate

    if not 1 <= args.n <= 1000:
        raise UserError(f"--n must be between 1 and 1000 (the test split), got {args.n}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be positive, got {args.batch_size}")
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise UserError(f"unknown metric {unknown[0] if unknown else '(none)'!r}; choose from "
                        f"{', '.join(METRICS)}")
    model = _model(args.model).to(args.device)
    methods = {key: _method(key, model, args.seed)
               for key in args.method or ["ig", "lrp:epsilon-plus", "input-x-gradient",
                                          "random"]}
    x, y = mnist5k("test")
    result = evaluate(model, (x[:args.n], y[:args.n]), methods, metrics,
                      batch_size=args.batch_size, device=args.device, progress=not args.quiet)
    result.info.update({"model": args.model, "data": "mnist5k test", "seed": args.seed})
    print(result.table())
    if args.json is not None:
        result.to_json(args.json)
    if args.csv is not None:
        result.to_csv(args.csv)
    return 0


def _model(spec: str) -> Any:
    from lumos.errors import UserError

    if spec == "mnist5k-cnn":
        from lumos.models.zoo import mnist5k_cnn

        return mnist5k_cnn()
    from lumos.models.checkpoint import CheckpointError, load_checkpoint

    if not Path(spec).is_file():
        raise UserError(f"--model {spec!r} is neither 'mnist5k-cnn' nor a checkpoint file")
    try:
        return load_checkpoint(spec)[0]
    except (CheckpointError, OSError, ValueError) as err:
        raise UserError(str(err)) from err


def _method(key: str, model: Any, seed: int) -> Any:
    from lumos.errors import UserError
    from lumos.experiments import methods
    from lumos.metrics.evaluate import inverted, random_attribution

    if key == "random":
        return random_attribution(seed)
    if key.startswith("inverted:"):
        return inverted(_method(key[len("inverted:"):], model, seed))
    try:
        return methods.build(methods.parse(key), model, methods.Domain.unit(1))
    except (ValueError, methods.MethodUnavailable) as err:
        raise UserError(f"{err} (or random, inverted:KEY)") from err
