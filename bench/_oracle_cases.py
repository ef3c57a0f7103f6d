"""The comparisons of bench/metrics_oracle.py: one case per metric, lumos vs Quantus 0.6."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from _quantus_shims import explain_for_quantus, patched, per_sample_max, replaying
from lumos import metrics as M
from lumos.metrics._prep import baseline_values
from lumos.metrics.faithfulness import random_subsets
from lumos.metrics.mprt import off_classes, smooth_noise
from lumos.metrics.road import road_noise
from lumos.metrics.robustness import gaussian_noise, uniform_noise

ALL = ("IG", "LRP", "random")


@dataclass
class Setup:
    model: nn.Module
    x: Tensor
    y: Tensor
    attributions: dict[str, Tensor]
    explainers: dict[str, Callable[[nn.Module, Tensor, Tensor], Tensor]]

    @property
    def xn(self) -> np.ndarray:
        return self.x.numpy()

    @property
    def yn(self) -> np.ndarray:
        return self.y.numpy()

    def an(self, method: str) -> np.ndarray:
        return self.attributions[method].numpy()

    def explain(self, method: str) -> Callable[[Tensor, Any], Tensor]:
        fn = self.explainers[method]
        return lambda xx, t: fn(self.model, xx, torch.as_tensor(t).long())

    def quantus_explain(self, method: str) -> Callable[..., np.ndarray]:
        return explain_for_quantus(self.explainers[method])

    @property
    def mask(self) -> Tensor:
        return self.x[:, 0] > 0.5  # the digit's ink: where the evidence should be


@dataclass
class Case:
    name: str
    run: Callable[[Setup, str], tuple[Any, Any]]
    note: str = ""
    methods: tuple[str, ...] = ALL
    tol: float = 1e-5
    extra: dict[str, Any] = field(default_factory=dict)


QUIET = {"disable_warnings": True, "display_progressbar": False}


def q(cls_name: str, **kwargs: Any) -> Any:
    import quantus

    normalise = kwargs.get("normalise", True)
    if normalise:
        kwargs.setdefault("normalise_func", per_sample_max)
    return getattr(quantus, cls_name)(**QUIET, **kwargs)


def call(metric: Any, s: Setup, method: str | None, **kwargs: Any) -> Any:
    a = None if method is None else s.an(method)
    return metric(model=s.model, x_batch=s.xn, y_batch=s.yn, a_batch=a, device="cpu",
                  batch_size=len(s.x), **kwargs)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- faithfulness
def faithfulness_correlation(s: Setup, m: str, size: int = 224) -> tuple[Any, Any]:
    ours = M.faithfulness_correlation(s.model, s.x, s.attributions[m], s.y, n_runs=32,
                                      subset_size=size, generator=gen(1))
    subsets = random_subsets(len(s.x), 784, 32, size, gen(1)).numpy()
    order = [subsets[i, r] for r in range(32) for i in range(len(s.x))]
    with replaying("quantus.metrics.faithfulness.faithfulness_correlation", choice=order):
        theirs = call(q("FaithfulnessCorrelation", nr_runs=32, subset_size=size,
                        return_aggregate=False), s, m)
    return ours, theirs


def sensitivity_n(s: Setup, m: str) -> tuple[Any, Any]:
    ours = M.sensitivity_n(s.model, s.x, s.attributions[m], s.y, n=78, n_runs=32,
                           generator=gen(1))
    return ours, faithfulness_correlation(s, m, 78)[1]


def faithfulness_estimate(s: Setup, m: str) -> tuple[Any, Any]:
    ours = M.faithfulness_estimate(s.model, s.x, s.attributions[m], s.y)
    return ours, call(q("FaithfulnessEstimate"), s, m)


def monotonicity(s: Setup, m: str) -> tuple[Any, Any]:
    ours = M.monotonicity(s.model, s.x, s.attributions[m], s.y)
    flat = s.xn.reshape(len(s.x), -1)

    def insert(arr: np.ndarray, indices: np.ndarray, **_: Any) -> np.ndarray:
        out = arr.copy()
        rows = np.arange(len(arr))[:, None]
        out[rows, indices] = flat[rows, indices]
        return out

    return ours, call(q("Monotonicity", perturb_func=insert), s, m)


def monotonicity_correlation(s: Setup, m: str) -> tuple[Any, Any]:
    a = untied(s.attributions[m])
    ours = M.monotonicity_correlation(s.model, s.x, a, s.y, n_samples=8, features_in_step=7,
                                      generator=gen(2))
    draws = baseline_values(s.x, "uniform", (112, 8), gen(2)).numpy()
    order = [draws[:, k, d].astype(np.float64) for k in range(112) for d in range(8)]
    with replaying("quantus.helpers.utils", uniform=order):
        theirs = q("MonotonicityCorrelation", nr_samples=8, features_in_step=7)(
            model=s.model, x_batch=s.xn, y_batch=s.yn, a_batch=a.numpy(), device="cpu",
            batch_size=len(s.x))
    return ours, theirs


def pixel_flipping(s: Setup, m: str) -> tuple[Any, Any]:
    ours = M.pixel_flipping(s.model, s.x, s.attributions[m], s.y, score="softmax")[:, 1:]
    return ours, np.asarray(call(q("PixelFlipping"), s, m))


def selectivity(s: Setup, m: str) -> tuple[Any, Any]:
    ours = M.selectivity(s.model, s.x, s.attributions[m], s.y, curve=True)
    return ours, np.asarray(call(q("Selectivity"), s, m))


def region_perturbation(s: Setup, m: str) -> tuple[Any, Any]:
    ours = M.region_perturbation(s.model, s.x, s.attributions[m], s.y, curve=True)
    return ours, np.asarray(call(q("RegionPerturbation"), s, m))


def irof(s: Setup, m: str) -> tuple[Any, Any]:
    a = untied(s.attributions[m])
    curve = M.irof(s.model, s.x, a, s.y, curve=True).numpy()
    ours, theirs = [], []
    for i in range(len(s.x)):
        p = curve[i][1:][~np.isnan(curve[i][1:])]
        ours.append(len(p) - np.trapezoid(p))  # Quantus's scale, from lumos's curve
        mean = float(s.xn[i].mean())

        def fill(arr: np.ndarray, mask: np.ndarray, mean: float = mean, **_: Any) -> np.ndarray:
            return np.where(mask, mean, arr)

        metric = q("IROF", perturb_func=fill, return_aggregate=False)
        with replaying("quantus.helpers.utils", extra={"trapz": np.trapezoid}):
            theirs += list(metric(model=s.model, x_batch=s.xn[i:i + 1], y_batch=s.yn[i:i + 1],
                                  a_batch=a.numpy()[i:i + 1], device="cpu", batch_size=1))
    return ours, theirs


def road(s: Setup, m: str) -> tuple[Any, Any]:
    from quantus.functions.perturb_func import noisy_linear_imputation

    pcts = [5, 25, 50, 75, 95]
    a = untied(s.attributions[m])
    ours = M.road(s.model, s.x, a, s.y, percentages=pcts, generator=gen(3), curve=True)
    g = gen(3)
    noise = [road_noise(tuple(s.x.shape), g).numpy() for _ in pcts]
    calls = iter(range(10 ** 9))
    n = len(s.x)

    def impute(arr: np.ndarray, indices: np.ndarray, noise_level: float = 0.01,
               **_: Any) -> np.ndarray:
        c = next(calls)
        out = noisy_linear_imputation(arr, indices, noise=0.0)
        flat = out.reshape(arr.shape[0], -1)
        flat[:, indices] += 0.01 * noise[c // n][c % n].reshape(arr.shape[0], -1)[:, indices]
        return flat.reshape(arr.shape)

    theirs = q("ROAD", percentages=pcts, perturb_func=impute)(
        model=s.model, x_batch=s.xn, y_batch=s.yn, a_batch=a.numpy(), device="cpu",
        batch_size=len(s.x))
    return ours.mean(0), np.array(list(theirs.values()))


def untied(a: Tensor) -> Tensor:
    """``a`` with its ties broken by position (earlier first), the same for both sides:
    Quantus's quicksort orders tied features arbitrarily, lumos's sort keeps their order."""
    flat = a.reshape(len(a), -1).double()
    step = 1e-9 * flat.abs().amax(1, keepdim=True).clamp_min(1e-30)
    return (flat - step * torch.arange(flat.shape[1]) / flat.shape[1]).float().reshape(a.shape)


def sufficiency(s: Setup, m: str) -> tuple[Any, Any]:
    from lumos.metrics._prep import relevance

    ours = M.sufficiency(s.model, s.x, s.attributions[m])
    a = relevance(s.x, s.attributions[m].float(), absolute=True, normalise=True).numpy()
    var = a.var(0, ddof=1)
    keep = var > 0

    def seuclidean(u: np.ndarray, v: np.ndarray, **_: Any) -> float:
        return float(np.sqrt((((u - v)[keep]) ** 2 / var[keep]).sum()))

    theirs = call(q("Sufficiency", distance_func=seuclidean), s, m)
    return np.nan_to_num(ours.numpy()), theirs


# ---------------------------------------------------------------- robustness
def _robust(name: str, fn: Callable[..., Tensor], noise: str, s: Setup, m: str,
            **extra: Any) -> tuple[Any, Any]:
    k = 6
    lumos_kw = {"lower_bound": 0.2} if noise == "pm" else {}
    ours = fn(s.model, s.x, s.attributions[m], s.y, explain=s.explain(m), n_samples=k,
              generator=gen(4), **lumos_kw, **extra.get("lumos", {}))
    g = gen(4)
    draw = {"pm": lambda: uniform_noise(s.x, 0.2, None, g),
            "gauss": lambda: gaussian_noise(s.x, 0.0, 0.1, g),
            "pos": lambda: uniform_noise(s.x, 0.02, 0.2, g)}[noise]()
    draws = iter([draw().numpy().reshape(len(s.x), -1) for _ in range(k)])

    def perturb(arr: np.ndarray, indices: np.ndarray, **_: Any) -> np.ndarray:
        return arr + next(draws)

    metric = q(name, nr_samples=k, perturb_func=perturb, **extra.get("quantus", {}))
    return ours, call(metric, s, m, explain_func=s.quantus_explain(m))


def stability(name: str, fn: Callable[..., Tensor]) -> Callable[[Setup, str], tuple[Any, Any]]:
    def run(s: Setup, m: str) -> tuple[Any, Any]:
        return _robust(name, fn, "pos", s, m, lumos={"exclude_changed": False},
                       quantus={"return_nan_when_prediction_changes": False})
    return run


def consistency(s: Setup, m: str) -> tuple[Any, Any]:
    from lumos.metrics.agreement import top_n_sign

    ours = M.consistency(s.model, s.x, s.attributions[m])

    def label(row: np.ndarray) -> int:
        return hash(top_n_sign(torch.from_numpy(row[None].astype(np.float64)))[0])

    theirs = call(q("Consistency", discretise_func=label), s, m)
    return np.nan_to_num(ours.numpy()), theirs


def continuity(s: Setup, m: str) -> tuple[Any, Any]:
    ours = M.continuity(s.model, s.x, None, s.y, explain=s.explain(m))
    with patched("quantus.helpers.asserts", "assert_attributions", lambda **_: None):
        theirs = call(q("Continuity"), s, m, explain_func=s.quantus_explain(m))
    return ours, theirs


# ---------------------------------------------------------------- localisation
def localisation(name: str, fn: Callable[..., Tensor], **kw: Any) -> Callable[..., Any]:
    def run(s: Setup, m: str) -> tuple[Any, Any]:
        a = s.attributions[m].double()  # no model here: compare in float64 on both sides
        ours = fn(a, s.mask, **kw.get("lumos", {}))
        theirs = q(name, **kw.get("quantus", {}))(
            model=s.model, x_batch=s.xn, y_batch=s.yn, a_batch=a.numpy(), device="cpu",
            batch_size=len(s.x), s_batch=s.mask[:, None].numpy().astype(np.float32))
        return ours, theirs
    return run


def focus(s: Setup, m: str) -> tuple[Any, Any]:
    flags = (torch.rand(len(s.x), 4, generator=gen(5)) < 0.5).int()
    flags[:, 0] |= (flags.sum(1) == 0).int()  # at least one quadrant of the class
    ours = M.focus(s.attributions[m], M.quadrant_mask(flags, 28, 28))
    theirs = call(q("Focus"), s, m, custom_batch=flags.numpy().tolist())
    return ours, theirs


# ---------------------------------------------------------------- complexity, axioms
def simple(name: str, fn: Callable[..., Tensor], q_kw: dict[str, Any] | None = None,
           **lumos_kw: Any) -> Callable[..., Any]:
    def run(s: Setup, m: str) -> tuple[Any, Any]:
        a = s.attributions[m].double()  # no model here: compare in float64 on both sides
        theirs = q(name, **(q_kw or {}))(model=s.model, x_batch=s.xn, y_batch=s.yn,
                                         a_batch=a.numpy(), device="cpu", batch_size=len(s.x))
        return fn(a, **lumos_kw), theirs
    return run


def with_model(name: str, fn: Callable[..., Tensor], q_kw: dict[str, Any] | None = None,
               **lumos_kw: Any) -> Callable[..., Any]:
    def run(s: Setup, m: str) -> tuple[Any, Any]:
        ours = fn(s.model, s.x, s.attributions[m], s.y, **lumos_kw)
        return ours, call(q(name, **(q_kw or {})), s, m)
    return run


def completeness(s: Setup, m: str) -> tuple[Any, Any]:
    ours = M.completeness(s.model, s.x, s.attributions[m], s.y, rtol=0.0)
    return ours, call(q("Completeness", normalise=False), s, m)


def input_invariance(s: Setup, m: str) -> tuple[Any, Any]:
    flat = nn.Sequential(*s.model.features, *s.model.classifier).eval()  # Quantus shifts
    fn = s.explainers[m]                                                 # modules[1]
    ours = M.input_invariance(flat, s.x, s.attributions[m], s.y, model_explain=fn)
    theirs = q("InputInvariance", normalise=False)(
        model=flat, x_batch=s.xn, y_batch=s.yn, a_batch=s.an(m), device="cpu",
        batch_size=len(s.x), explain_func=s.quantus_explain(m))
    return ours, theirs


# ---------------------------------------------------------------- randomisation
def random_logit(s: Setup, m: str) -> tuple[Any, Any]:
    from skimage.metrics import structural_similarity

    ours = M.random_logit(s.model, s.x, s.attributions[m], s.y, explain=s.explain(m),
                          generator=gen(6))
    draw = off_classes(s.y, 10, gen(6))
    index = draw - (draw > s.y).long()

    def ssim_2d(a: np.ndarray, b: np.ndarray, batched: bool = True, **_: Any) -> list[float]:
        out = []
        for u, v in zip(a, b, strict=True):
            both = np.concatenate([u, v])
            out.append(structural_similarity(u.reshape(28, 28), v.reshape(28, 28),
                                             data_range=float(both.max() - both.min())))
        return out

    with replaying("quantus.metrics.randomisation.random_logit", randint=[index.numpy()]):
        theirs = call(q("RandomLogit", num_classes=10, similarity_func=ssim_2d), s, m,
                      explain_func=s.quantus_explain(m))
    return ours, theirs


def mprt(s: Setup, m: str) -> tuple[Any, Any]:
    ours = M.mprt(s.model, s.x, s.attributions[m], s.y, model_explain=s.explainers[m],
                  reduce="none")
    theirs = call(q("MPRT"), s, m, explain_func=s.quantus_explain(m))
    rows = [v for k, v in theirs.items() if k != "original"]
    return ours, np.array(rows)


def smooth_mprt(s: Setup, m: str) -> tuple[Any, Any]:
    import quantus

    k = 3
    ours = M.smooth_mprt(s.model, s.x, None, s.y, model_explain=s.explainers[m], n_samples=k,
                         generator=gen(7), reduce="none")
    g = gen(7)
    layers = len(M.mprt.__globals__["randomisation_layers"](s.model))
    draws = [[smooth_noise(s.x, g).numpy() for _ in range(k - 1)] for _ in range(layers + 1)]
    order = draws[0] + draws[0] + [d for block in draws[1:] for d in block]
    explain = s.quantus_explain(m)

    class Explain:
        def __getattr__(self, name: str) -> Any:
            return explain if name == "explain" else getattr(quantus, name)

    with replaying("quantus.metrics.randomisation.smooth_mprt", randn=order), \
            patched("quantus.metrics.randomisation.smooth_mprt", "quantus", Explain()):
        theirs = q("SmoothMPRT", nr_samples=k)(
            model=s.model, x_batch=s.xn, y_batch=s.yn, a_batch=None, device="cpu",
            batch_size=len(s.x), explain_func=explain)
    rows = [v for key, v in theirs.items() if key != "original"]
    return ours, np.array(rows)


CASES: list[Case] = [
    Case("faithfulness_correlation", faithfulness_correlation, "same subsets (32 runs)"),
    Case("faithfulness_estimate", faithfulness_estimate),
    Case("monotonicity", monotonicity, "Quantus defect: inserts baseline; oracle inserts x"),
    Case("monotonicity_correlation", monotonicity_correlation,
         "same draws (8 x 7-px groups); ties broken alike"),
    Case("pixel_flipping", pixel_flipping, "curves"),
    Case("selectivity", selectivity, "curves"),
    Case("region_perturbation", region_perturbation, "curves"),
    Case("sensitivity_n", sensitivity_n,
         "Quantus defect: not Ancona's; vs its FaithfulnessCorrelation(n=78)"),
    Case("irof", irof, "Quantus defects: np.trapz, batch mean, padding: per sample, own mean; "
         "ties alike"),
    Case("road", road, "same noise; share per percentage; ties broken alike"),
    Case("sufficiency", sufficiency, "Quantus defect: seuclidean NaN; zero-var features out"),
    Case("local_lipschitz_estimate",
         lambda s, m: _robust("LocalLipschitzEstimate", M.local_lipschitz_estimate, "gauss",
                              s, m), "same noise (6 draws)"),
    Case("max_sensitivity", lambda s, m: _robust("MaxSensitivity", M.max_sensitivity, "pm", s,
                                                 m), "same noise (6 draws)"),
    Case("avg_sensitivity", lambda s, m: _robust("AvgSensitivity", M.avg_sensitivity, "pm", s,
                                                 m), "same noise (6 draws)"),
    Case("continuity", continuity, "Quantus defect: its zero-map check rejects the digits "
         "translated out of view; check off"),
    Case("consistency", consistency, "Quantus defect: top_n_sign takes the first n"),
    *[Case(name, stability(cls, fn), "same noise; class changes kept on both sides")
      for name, cls, fn in [
          ("relative_input_stability", "RelativeInputStability", M.relative_input_stability),
          ("relative_output_stability", "RelativeOutputStability", M.relative_output_stability),
          ("relative_representation_stability", "RelativeRepresentationStability",
           M.relative_representation_stability)]],
    Case("pointing_game", localisation("PointingGame", M.pointing_game)),
    Case("attribution_localisation",
         localisation("AttributionLocalisation", M.attribution_localisation)),
    Case("top_k_intersection", localisation("TopKIntersection", M.top_k_intersection,
                                            lumos={"k": 100}, quantus={"k": 100})),
    Case("relevance_rank_accuracy", localisation("RelevanceRankAccuracy",
                                                 M.relevance_rank_accuracy)),
    Case("relevance_mass_accuracy", localisation("RelevanceMassAccuracy",
                                                 M.relevance_mass_accuracy)),
    Case("localisation_auc", localisation("AUC", M.localisation_auc)),
    Case("focus", focus, "random quadrant flags"),
    Case("sparseness", simple("Sparseness", M.sparseness, normalise=True, eps=1e-7),
         "lumos eps=1e-7 as Quantus"),
    Case("complexity", simple("Complexity", M.complexity)),
    Case("effective_complexity", simple("EffectiveComplexity", M.effective_complexity)),
    Case("random_logit", random_logit, "same classes; SSIM on the image (Quantus: 1-D)"),
    Case("mprt", mprt, "per layer, top-down"),
    Case("smooth_mprt", smooth_mprt, "same noise (3 samples), per layer"),
    Case("completeness", completeness, "exact equality both (Quantus, normalise=False)"),
    Case("non_sensitivity", with_model("NonSensitivity", M.non_sensitivity)),
    Case("input_invariance", input_invariance, "model flattened for Quantus's modules[1]"),
]
