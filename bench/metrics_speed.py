"""Metric speed: every lumos metric against Quantus 0.6 on the same inputs and settings, and the
families x methods table on 256 digits.

Part 1 (needs Quantus): the trained mnist-5k CNN, ``--n`` held-out digits (default 64), their
LRP-epsilon-plus attribution, the settings in ``SETTINGS``. Each metric runs once per side per
repeat, interleaved (a call shorter than ``SHORT`` seconds is repeated to fill it, on every
side); medians and the ratio lumos / Quantus are printed (PASS: at most 0.5).

The metrics that re-explain (LRP epsilon-plus) get two Quantus columns:

- *Quantus, own explain* (``Q-own``): ``explain_func=quantus.explain`` with Zennit's
  ``EpsilonPlus`` composite (BatchNorm merged), what a Quantus user runs; the PASS column
  judges lumos against this, the user's time. Its maps equal lumos's LRP epsilon-plus in
  float64 (checked and printed first: Zennit's map times ``f_t(x)``, as Quantus starts
  Zennit from 1 at the target and lumos from ``f_t(x)``).
- *Quantus, lumos LRP inside* (``Q-lumos``): ``explain_func`` a fresh lumos LRP per call, so
  both sides spend the same time explaining and the ratio shows the metric machinery only
  (reported next to it, never hidden).

Part 2: :func:`lumos.metrics.evaluate` with the report's selection of every family
(:func:`lumos.experiments.families.report_metrics`, localisation on the digit's ink as mask)
for IG (32 Gauss-Legendre steps), LRP epsilon-plus, LRP epsilon-gamma-box and a random map on
256 digits, explanations included (PASS: under 120 s).

Quantus is GPL, never a lumos dependency: run part 1 from its own venv::

    make .venv-quantus/.installed
    .venv-quantus/bin/python bench/metrics_speed.py [--threads 2] [--repeats 3]
    .venv/bin/python bench/metrics_speed.py --table-only      # part 2 without Quantus
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lumos import metrics as M

#: name -> (lumos function, lumos options, Quantus class, Quantus options, needs)
#: needs: "mask" (localisation), "explain" (re-explains), "flags" (focus quadrants).
SETTINGS: dict[str, tuple[Callable[..., Any], dict[str, Any], str, dict[str, Any], str]] = {
    "faithfulness_correlation": (M.faithfulness_correlation, {"n_runs": 50},
                                 "FaithfulnessCorrelation", {"nr_runs": 50}, ""),
    "faithfulness_estimate": (M.faithfulness_estimate, {}, "FaithfulnessEstimate", {}, ""),
    "monotonicity": (M.monotonicity, {}, "Monotonicity", {}, ""),
    "monotonicity_correlation": (M.monotonicity_correlation,
                                 {"n_samples": 4, "features_in_step": 7},
                                 "MonotonicityCorrelation", {"nr_samples": 4,
                                                             "features_in_step": 7}, ""),
    "pixel_flipping": (M.pixel_flipping, {"score": "softmax"}, "PixelFlipping", {}, ""),
    "selectivity": (M.selectivity, {}, "Selectivity", {}, ""),
    "region_perturbation": (M.region_perturbation, {"patch_size": 4}, "RegionPerturbation",
                            {"patch_size": 4}, ""),
    "sensitivity_n": (M.sensitivity_n, {"n": 78, "n_runs": 50}, "FaithfulnessCorrelation",
                      {"nr_runs": 50, "subset_size": 78}, ""),
    "irof": (M.irof, {}, "IROF", {}, ""),
    "road": (M.road, {"percentages": (10, 30, 50, 70, 90)}, "ROAD",
             {"percentages": [10, 30, 50, 70, 90]}, ""),
    "sufficiency": (M.sufficiency, {}, "Sufficiency", {}, "notarget"),
    "local_lipschitz_estimate": (M.local_lipschitz_estimate, {"n_samples": 10},
                                 "LocalLipschitzEstimate", {"nr_samples": 10}, "explain"),
    "max_sensitivity": (M.max_sensitivity, {"n_samples": 10}, "MaxSensitivity",
                        {"nr_samples": 10}, "explain"),
    "avg_sensitivity": (M.avg_sensitivity, {"n_samples": 10}, "AvgSensitivity",
                        {"nr_samples": 10}, "explain"),
    "continuity": (M.continuity, {"n_steps": 14}, "Continuity", {"nr_steps": 14}, "explain"),
    "consistency": (M.consistency, {}, "Consistency", {}, "notarget"),
    "relative_input_stability": (M.relative_input_stability, {"n_samples": 10},
                                 "RelativeInputStability", {"nr_samples": 10}, "explain"),
    "relative_output_stability": (M.relative_output_stability, {"n_samples": 10},
                                  "RelativeOutputStability", {"nr_samples": 10}, "explain"),
    "relative_representation_stability": (M.relative_representation_stability,
                                          {"n_samples": 10}, "RelativeRepresentationStability",
                                          {"nr_samples": 10}, "explain"),
    "pointing_game": (M.pointing_game, {}, "PointingGame", {}, "mask"),
    "attribution_localisation": (M.attribution_localisation, {}, "AttributionLocalisation", {},
                                 "mask"),
    "top_k_intersection": (M.top_k_intersection, {"k": 100}, "TopKIntersection", {"k": 100},
                           "mask"),
    "relevance_rank_accuracy": (M.relevance_rank_accuracy, {}, "RelevanceRankAccuracy", {},
                                "mask"),
    "relevance_mass_accuracy": (M.relevance_mass_accuracy, {}, "RelevanceMassAccuracy", {},
                                "mask"),
    "localisation_auc": (M.localisation_auc, {}, "AUC", {}, "mask"),
    "focus": (M.focus, {}, "Focus", {}, "flags"),
    "sparseness": (M.sparseness, {}, "Sparseness", {}, "map"),
    "complexity": (M.complexity, {}, "Complexity", {}, "map"),
    "effective_complexity": (M.effective_complexity, {}, "EffectiveComplexity", {}, "map"),
    "random_logit": (M.random_logit, {}, "RandomLogit", {"num_classes": 10}, "explain"),
    "mprt": (M.mprt, {"reduce": "none"}, "MPRT", {}, "explain"),
    "smooth_mprt": (M.smooth_mprt, {"n_samples": 5, "reduce": "none"}, "SmoothMPRT",
                    {"nr_samples": 5}, "explain"),
    "completeness": (M.completeness, {}, "Completeness", {}, ""),
    "non_sensitivity": (M.non_sensitivity, {}, "NonSensitivity", {}, ""),
    "input_invariance": (M.input_invariance, {}, "InputInvariance", {"normalise": False},
                         "explain"),
}


class Setup:
    def __init__(self, n: int) -> None:
        import lumos
        from lumos.data.samples import mnist5k
        from lumos.lrp import composites
        from lumos.models.zoo import mnist5k_cnn

        cnn = mnist5k_cnn().eval()
        self.model = nn.Sequential(*cnn.features, *cnn.classifier).eval()  # the same network,
        x, y = mnist5k("test")                        # flat, as Quantus's input invariance needs
        self.x, self.y = x[:n].contiguous(), y[:n].clone()
        self.lrp = lumos.LRP(self.model, composite=composites.EpsilonPlus())
        self.a = self.lrp.attribute(self.x, target=self.y).detach()
        self.mask = self.x[:, 0] > 0.5
        self.flags = (torch.rand(n, 4, generator=torch.Generator().manual_seed(0)) < 0.5).int()
        self.flags[:, 0] |= (self.flags.sum(1) == 0).int()
        self.quadrants = M.quadrant_mask(self.flags, 28, 28)  # Quantus gets the flags as given

    def explain_model(self, model: nn.Module, x: Tensor, t: Tensor) -> Tensor:
        import lumos
        from lumos.lrp import composites

        return lumos.LRP(model, composite=composites.EpsilonPlus()).attribute(x, target=t)


def run_lumos(s: Setup, name: str) -> Any:
    fn, options, _, _, needs = SETTINGS[name]
    if needs in ("map",):
        return fn(s.a, **options)
    if needs == "mask":
        return fn(s.a, s.mask, **options)
    if needs == "flags":
        return fn(s.a, s.quadrants, **options)
    if needs == "notarget":
        return fn(s.model, s.x, s.a, **options)
    if needs == "explain":
        # the randomisation metrics rebuild the given LRP for each randomised model (the
        # lumos way); input invariance explains the shifted model with a fresh LRP per call
        key = "model_explain" if name == "input_invariance" else "explain"
        value = s.explain_model if key == "model_explain" else s.lrp
        return fn(s.model, s.x, s.a, s.y, **{key: value}, **options)
    return fn(s.model, s.x, s.a, s.y, **options)


def run_quantus(s: Setup, name: str, own: bool = False) -> Any:
    """Quantus's metric ``name``; ``own``: it explains with ``quantus.explain`` (Zennit) instead
    of lumos's LRP."""
    import quantus

    from _quantus_shims import explain_for_quantus, per_sample_max, zennit_epsilon_plus

    _, _, cls, options, needs = SETTINGS[name]
    metric = getattr(quantus, cls)(disable_warnings=True, display_progressbar=False,
                                   normalise_func=per_sample_max, **options)
    kwargs: dict[str, Any] = {}
    if needs == "mask":
        kwargs["s_batch"] = s.mask[:, None].numpy().astype(np.float32)
    if needs == "flags":
        kwargs["custom_batch"] = s.flags.numpy().tolist()
    if needs == "explain" and own:
        kwargs["explain_func"] = quantus.explain
        kwargs["explain_func_kwargs"] = zennit_epsilon_plus()
    elif needs == "explain":
        kwargs["explain_func"] = explain_for_quantus(s.explain_model)
    from _quantus_shims import patched, replaying

    # Quantus defects worked around: np.trapz is gone in numpy 2.4 (IROF); its zero-map check
    # rejects digits translated out of view (continuity)
    class Explain:  # SmoothMPRT calls quantus.explain (Zennit): lumos's LRP unless own
        def __getattr__(self, attr: str) -> Any:
            return kwargs.get("explain_func") if attr == "explain" else getattr(quantus, attr)

    with replaying("quantus.helpers.utils", extra={"trapz": np.trapezoid}), \
            patched("quantus.helpers.asserts", "assert_attributions", lambda **_: None), \
            patched("quantus.metrics.randomisation.smooth_mprt", "quantus",
                    quantus if own else Explain()):
        return metric(model=s.model, x_batch=s.x.numpy(), y_batch=s.y.numpy(),
                      a_batch=None if name == "smooth_mprt" else s.a.numpy(), device="cpu",
                      batch_size=len(s.x), **kwargs)


#: Calls shorter than this are repeated until they add up to it (the same on both sides), so a
#: metric of a few milliseconds is timed over many calls, not one.
SHORT = 0.25


def timed(fn: Callable[[], Any]) -> float:
    """Seconds per call of ``fn``: one call, or the mean of as many as fill ``SHORT``."""
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    if seconds >= SHORT:
        return seconds
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < SHORT:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls


def part_one(n: int, repeats: int, only: list[str] | None) -> None:
    from _quantus_shims import own_explain_check

    s = Setup(n)
    as_is, no_eps = own_explain_check(s.model, s.x, s.y)
    print(f"quantus.explain (Zennit EpsilonPlus, BatchNorm merged) vs lumos LRP eps+ on the {n} "
          f"digits, float64, largest difference relative to the sample's largest |relevance| "
          f"(Zennit's map x f_t(x)): {as_is:.1e} ({no_eps:.1e} with BatchNorm eps 0: Zennit "
          "0.5.1 leaves eps in the merged BatchNorm)")
    print(f"part 1: lumos vs Quantus 0.6, {n} digits, LRP-eps+ attribution, "
          f"{torch.get_num_threads()} torch thread(s); medians of {repeats}")
    print("Q-own: Quantus explaining with its own quantus.explain (Zennit), the user's time; "
          "Q-lumos: Quantus with lumos's LRP inside (metric machinery only).\n"
          "PASS judges lumos / Q-own where Quantus re-explains, lumos / Quantus elsewhere.")
    print(f"{'metric':34s} {'lumos s':>9s} {'Q-own s':>9s} {'/Q-own':>7s} {'Q-lumos s':>10s} "
          f"{'/Q-lumos':>8s}")
    worst = 0.0
    for name in SETTINGS:
        if only and name not in only:
            continue
        sides: dict[str, Callable[[], Any]] = {"lumos": lambda name=name: run_lumos(s, name)}
        if SETTINGS[name][4] == "explain":
            sides["own"] = lambda name=name: run_quantus(s, name, own=True)
        sides["quantus"] = lambda name=name: run_quantus(s, name)
        times: dict[str, list[float]] = {side: [] for side in sides}
        failed = ""
        for _ in range(repeats):
            for side, fn in sides.items():
                try:
                    times[side].append(timed(fn))
                except Exception as err:  # a Quantus defect: say so, go on with the next metric
                    failed = f"Quantus ({side}): {type(err).__name__}: {err}"
                    break
            if failed:
                break
        if failed:
            print(f"{name:34s} {times['lumos'][-1]:9.3f} fails  {failed}"[:160], flush=True)
            continue
        med = {side: statistics.median(v) for side, v in times.items()}
        machinery = med["lumos"] / med["quantus"]
        own = med["lumos"] / med["own"] if "own" in med else None
        judged = own if own is not None else machinery
        worst = max(worst, judged)
        own_cols = f"{med['own']:9.3f} {own:7.2f}" if own is not None else f"{'':9s} {'':7s}"
        print(f"{name:34s} {med['lumos']:9.3f} {own_cols} {med['quantus']:10.3f} "
              f"{machinery:8.2f}  {'PASS' if judged <= 0.5 else 'FAIL'}", flush=True)
    print(f"largest judged ratio {worst:.2f} (target: at most 0.5)")


def part_two(n: int) -> float:
    import lumos
    from lumos.data.samples import mnist5k
    from lumos.experiments.families import report_metrics
    from lumos.lrp import composites
    from lumos.models.zoo import mnist5k_cnn

    model = mnist5k_cnn().eval()
    x, y = mnist5k("test")
    x, y = x[:n].contiguous(), y[:n].clone()
    ig = lumos.IntegratedGradients(model)
    methods: dict[str, Any] = {
        "IG": M.ModelMethod(lambda m: (lambda xx, t: lumos.IntegratedGradients(m).attribute(
            xx, target=t, n_steps=32))),
        "LRP eps+": lumos.LRP(model, composite=composites.EpsilonPlus()),
        "LRP gamma-box": lumos.LRP(model, composite=composites.EpsilonGammaBox(low=0.0,
                                                                               high=1.0)),
        "random": M.random_attribution(0)}
    del ig
    chosen = [*report_metrics(28), *M.FAMILY_METRICS["localisation"]]
    start = time.perf_counter()
    result = M.evaluate(model, (x, y), methods, chosen, masks=x[:, 0] > 0.5, batch_size=n,
                        progress=False)
    seconds = time.perf_counter() - start
    print(f"\npart 2: {len(chosen)} metrics of the six families x {len(methods)} methods on {n} "
          f"digits, explanations included: {seconds:.1f} s "
          f"({'PASS' if seconds < 120 else 'FAIL'}: under 120 s)\n")
    print(result.tables())
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--table-n", type=int, default=256)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument("--no-table", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    if not args.table_only:
        try:
            import quantus  # noqa: F401
        except ImportError:
            print("Quantus is not installed here: make .venv-quantus/.installed and run "
                  ".venv-quantus/bin/python bench/metrics_speed.py (GPL: never a lumos "
                  "dependency); part 2 follows")
        else:
            part_one(args.n, args.repeats, args.only)
    if not args.no_table:
        part_two(args.table_n)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    main()
