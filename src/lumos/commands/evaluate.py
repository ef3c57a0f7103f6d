"""``lumos evaluate``: measure explanation methods as a table: on held-out digits, on any
model and dataset (``--model``/``--dataset`` as in ``explain-dataset``), or over a store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = ("measure explanation methods with the metrics of Quantus's six families (faithfulness, "
        "robustness, localisation, complexity, randomisation, axiomatic) and pixel flipping: "
        "one methods x metrics table per family")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lumos evaluate``."""
    parser.add_argument("--model", default="mnist5k-cnn",
                        help="'mnist5k-cnn' (the embedded CNN, trained once and cached), a "
                             "lumos checkpoint, efficientnet-lite0, a torchvision name or "
                             "timm:NAME (see explain-dataset)")
    parser.add_argument("--weights", type=Path, default=None,
                        help="local state dict for a torchvision/timm --model")
    parser.add_argument("--dataset", default=None,
                        help="any explain-dataset dataset (mnist-5k, imagenette, folder:DIR, "
                             "...; default: the mnist-5k test digits)")
    parser.add_argument("--split", choices=("train", "test", "all"), default=None,
                        help="split of --dataset (default: all for a plain folder, else test)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="where catalog datasets live (default: $LUMOS_DATA or ./data)")
    parser.add_argument("--store", type=Path, default=None,
                        help="evaluate the stored maps of an explain-dataset store instead "
                             "(its model and inputs; metrics that re-run a method are refused)")
    parser.add_argument("--method", action="append", default=None,
                        help="ig, lrp:COMPOSITE, gradient, input-x-gradient, smoothgrad, "
                             "random, or inverted:KEY; repeat for several (default: ig, "
                             "lrp:epsilon-plus, input-x-gradient, random)")
    parser.add_argument("--metric", action="append", default=None, metavar="NAME",
                        help="a metric (faithfulness_correlation, pointing_game, irof, road_morf, "
                             "mprt, ...; `lumos evaluate --list` names them all) or a family "
                             "(faithfulness, robustness, localisation, family:complexity, "
                             "randomisation, axiomatic); repeat for several")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated metric or family names (default, without "
                             "--metric: aopc_morf,aopc_lerf,insertion,deletion,sparseness,"
                             "runtime)")
    parser.add_argument("--list", action="store_true",
                        help="list every metric with its family and which way is better")
    parser.add_argument("--n", type=int, default=200,
                        help="samples to use (default: 200; mnist-5k test digits: max 1000)")
    parser.add_argument("--batch-size", type=int, default=50, help="samples per batch")
    parser.add_argument("--json", type=Path, default=None, help="write the result as JSON")
    parser.add_argument("--csv", type=Path, default=None, help="write the result as CSV")


def run(args: argparse.Namespace) -> int:
    """Evaluate; print the table on stdout (and write JSON / CSV when asked)."""
    from lumos.errors import UserError
    from lumos.metrics.evaluate import evaluate, resolve_metrics

    if args.list:
        return _list()
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be positive, got {args.batch_size}")
    names = list(args.metric or [])
    if args.metrics:
        names += [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not names:
        names = ["aopc_morf", "aopc_lerf", "insertion", "deletion", "sparseness", "runtime"]
    try:
        configs = resolve_metrics(names)
    except (ValueError, TypeError) as err:
        raise UserError(str(err)) from err
    local = any(getattr(c, "family", "") == "localisation" for c in configs)
    if args.store is not None:
        from lumos.store.evaluate import evaluate_store
        from lumos.store.reader import StoreError

        chosen = [c for c in configs if c.name != "runtime"]  # stored maps were timed then
        try:
            result = evaluate_store(args.store, chosen, limit=args.n, batch_size=args.batch_size,
                                    device=args.device, progress=not args.quiet)
        except StoreError as err:
            raise UserError(str(err)) from err
        return _report(result, args)
    model, domain, (x, y), data_name, masks = _inputs(args, local)
    model = model.to(args.device)
    methods = {key: _method(key, model, args.seed, domain)
               for key in args.method or ["ig", "lrp:epsilon-plus", "input-x-gradient",
                                          "random"]}
    result = evaluate(model, (x, y), methods, configs, masks=masks, seed=args.seed,
                      batch_size=args.batch_size, device=args.device, progress=not args.quiet)
    result.info.update({"model": args.model, "data": data_name, "seed": args.seed})
    return _report(result, args)


def _list() -> int:
    from lumos.metrics.evaluate import METRICS

    for name, metric in METRICS.items():
        family = getattr(metric, "family", "faithfulness")
        print(f"{name:36s} {family:14s} {metric.better} is better")
    return 0


def _report(result: Any, args: argparse.Namespace) -> int:
    print(result.tables())
    if args.json is not None:
        result.to_json(args.json)
    if args.csv is not None:
        result.to_csv(args.csv)
    return 0


def _inputs(args: argparse.Namespace, masks: bool = False
            ) -> tuple[Any, Any, tuple[Any, Any], str, Any]:
    """Model, its input domain, the first ``--n`` samples, a name for the data and (when
    ``masks``) the samples' localisation masks."""
    import torch

    from lumos.errors import UserError
    from lumos.experiments import methods

    if args.dataset is None:
        from lumos.data.samples import mnist5k

        if not 1 <= args.n <= 1000:
            raise UserError(f"--n must be between 1 and 1000 (the test split), got {args.n}")
        if masks:
            raise UserError("localisation metrics need masks: use --dataset folder:DIR with "
                            "DIR/<class>/<name>.mask.png files, or a store of such a folder")
        x, y = mnist5k("test")
        return _model(args.model), methods.Domain.unit(1), (x[:args.n], y[:args.n]), \
            "mnist5k test", None
    from lumos.store.sources import dataset_masks, default_split, load_data, load_model

    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    clf, _ = load_model(args.model, args.weights)
    source = load_data(args.dataset, clf, args.split or default_split(args.dataset),
                       args.data_dir)
    items = [source.dataset[i] for i in range(min(args.n, len(source)))]
    x = torch.stack([item[0] for item in items])
    y = torch.tensor([int(item[1]) for item in items])
    return clf.model, clf.domain, (x, y), f"{args.dataset} {source.split}", \
        dataset_masks(source.dataset, len(items), args.dataset) if masks else None


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


def _method(key: str, model: Any, seed: int, domain: Any) -> Any:
    from lumos.errors import UserError
    from lumos.experiments import methods
    from lumos.metrics.evaluate import inverted, random_attribution

    if key == "random":
        return random_attribution(seed)
    if key.startswith("inverted:"):
        return inverted(_method(key[len("inverted:"):], model, seed, domain))
    try:
        return methods.build(methods.parse(key), model, domain)
    except (ValueError, methods.MethodUnavailable) as err:
        raise UserError(f"{err} (or random, inverted:KEY)") from err
