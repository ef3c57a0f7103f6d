"""The LRP attributor: one forward and one backward pass through a prepared graph of the model.

``LRP(model, composite)`` prepares the model for the input's size on first use
(:func:`lumos.lrp.prepare`: a private copy sharing the user's parameters, captured on the input,
constants folded, every operation a module of the op vocabulary), maps each layer to its rule
with the composite, and runs the graph with autograd functions whose backward pass *is*
relevance propagation (:mod:`lumos.lrp.engine.program`). The user's model is never run, changed
or hooked. Prepared programs are kept per input size (:mod:`lumos.lrp.engine.programs`).

Relevance is finite or the call raises one clear error: a non-finite heatmap, or one that is
zero everywhere although the explained score is not, names the first layer (from the output)
where the relevance broke. A heatmap below its dtype's rounding of the score counts as zero
when the relevance was worn away on the way (each rule's stabiliser absorbing what a layer of
tiny activations receives, as in models at an init whose activations shrink layer by layer):
the error names the layer that kept the smallest fraction of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import Target, TargetLike
from lumos.explanation import Explanation
from lumos.lrp import composites as comp
from lumos.lrp.engine.concepts import RelevanceHook
from lumos.lrp.engine.program import Program
from lumos.lrp.engine.programs import PROGRAMS_KEPT, Programs
from lumos.lrp.engine.report import (
    absorbed_layer,
    broken_layer,
    conservation_report,
    side_relevance,
)
from lumos.lrp.engine.steps import Run
from lumos.lrp.errors import LRPUnsupportedError
from lumos.lrp.rules import Rule, safe_ratio

RelevanceLike = Tensor | Callable[[Tensor], Tensor] | None
_Result = tuple[Tensor, Tensor, Tensor, Target, dict[str, Tensor]]


class LRP:
    """Layer-wise Relevance Propagation at about the cost of one gradient.

    Parameters
    ----------
    model : nn.Module
        A classifier of image batches: torchvision, timm, Hugging Face (its ``logits``), or
        your own; it is never modified (:func:`lumos.lrp.prepare` says what it accepts).
    composite : Composite, optional
        Which rule where (:mod:`lumos.lrp.composites`); default ``EpsilonPlus()``.

    Examples
    --------
    >>> lrp = LRP(model, composite=composites.EpsilonGammaBox(low=-3.0, high=3.0))
    >>> relevance = lrp.attribute(x, target=3)          # shaped like x, sums to about f_3(x)
    """

    def __init__(self, model: nn.Module, composite: comp.Composite | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"LRP needs a torch.nn.Module, got {type(model).__name__}")
        if composite is None:
            composite = comp.EpsilonPlus()
        if not isinstance(composite, comp.Composite):
            raise TypeError(f"composite must be a lumos.lrp.composites.Composite, got "
                            f"{type(composite).__name__}")
        self.model, self.composite = model, composite
        self._programs = Programs(model, composite)

    def program(self, example: Tensor) -> Program:
        """The prepared program for inputs shaped like ``example`` (the last
        :data:`PROGRAMS_KEPT` sizes stay prepared; all are re-made when the model changes)."""
        return self._programs.get(example)

    @property
    def rules(self) -> dict[str, Rule | None]:
        """Rule per module of the last prepared model, by prepared module name (the user's path
        for modules that came from the model); ``None``: the layer kind's default."""
        last = self._programs.last
        return {} if last is None else dict(last.rules)

    def attribute(self, inputs: Tensor, target: TargetLike = None,
                  relevance: RelevanceLike = None) -> Tensor:
        """Input relevance, shaped like ``inputs``.

        Parameters
        ----------
        inputs : Tensor
            A batch ``(N, ...)`` of finite floating-point inputs (``pixel_values`` for a
            Hugging Face model).
        target : int, sequence, LongTensor, callable or None
            What to explain (see :mod:`lumos.attribution.targets`); scores are the model's
            output tensor, or its ``logits``.
        relevance : Tensor or callable, optional
            Replaces the start relevance at the output (default ``f_t(x)`` at the target class
            and zero elsewhere): a tensor shaped like the output, or ``output -> tensor``.
        """
        return self._propagate(inputs, target, relevance, explain=False)[0]

    def explain(self, inputs: Tensor, target: TargetLike = None,
                relevance: RelevanceLike = None) -> Explanation:
        """Relevance plus a conservation report.

        ``layers`` holds, from output to input, the per-sample relevance sum leaving the output
        (``"output"``), entering each layer's inputs after its rule (by module path), flowing
        into constants (``"<path> (sink)"``: biases added outside layers, class tokens, position
        embeddings) and at the model input (``"input"``). ``delta`` is ``sum(relevance) -
        sum(start relevance)``, i.e. ``sum(R_input) - f_t(x)`` for the default start.
        """
        attribution, score, start, target_obj, layers = self._propagate(
            inputs, target, relevance, explain=True)
        total = attribution.reshape(len(attribution), -1).sum(1)
        return Explanation(attribution=attribution, output=score, method="lrp",
                           target=None if target_obj.classes is None else
                           target_obj.classes.clone(),
                           delta=total - start, layers=layers)

    def _propagate(self, inputs: Tensor, target: TargetLike, relevance: RelevanceLike,
                   explain: bool, hooks: Mapping[str, RelevanceHook] | None = None) -> _Result:
        x = check_input(inputs)
        program = self.program(x)
        result = self._run(program, x, target, relevance, explain, hooks)
        if result is None:   # the graph did not reproduce the model at this batch size
            program = self._programs.last or program   # prepared for it
            result = self._run(program, x, target, relevance, explain, hooks)
            assert result is not None
        attribution, _, start, _, layers = result
        finite = bool(torch.isfinite(attribution).all())
        gone = _vanished(attribution, start)
        if not finite or gone:
            rows: list[int] | None = None   # the report's rows: every sample
            if not explain:
                layers, rows = _report_broken(self, program, x, target, relevance, hooks,
                                                   attribution, gone)
            where = broken_layer(layers, finite)
            negligible = torch.finfo(attribution.dtype).eps
            for i in gone if finite and layers else []:
                absorbed = absorbed_layer(layers, i if rows is None else rows.index(i),
                                          negligible)
                if absorbed is not None and (absorbed[1] <= WORN_AWAY
                                             or not bool(attribution[i].any())):
                    raise LRPUnsupportedError(_absorbed_message(
                        program, absorbed, float(start[i]), attribution[i], where))
            if finite and all(bool(attribution[i].any()) for i in gone):
                return result   # tiny, not zero, and not worn away: the rules' answer
            if not finite or not _discards(program, where):
                raise LRPUnsupportedError(_broken_message(finite, where))
        return result

    def _run(self, program: Program, x: Tensor, target: TargetLike, relevance: RelevanceLike,
             explain: bool, hooks: Mapping[str, RelevanceHook] | None) -> _Result | None:
        tgt = Target(target, x.shape[0])
        state = Run(explain)
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            out = program.run(leaf, state, hooks)
            if not isinstance(out, Tensor) or out.dim() == 0 or out.shape[0] != x.shape[0]:
                raise ValueError("LRP needs a model whose scores have one row per input; got "
                                 f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))}")
            if len(x) not in program.verified and \
                    self._programs.check(program, x, out) is not None:
                return None
            if not program.rules_checked:
                _check_rules_forward(program, leaf, out)
            if relevance is not None and target is None:  # the start needs no target
                start = _start(out, None, relevance)
                score = start.reshape(len(start), -1).sum(1)
            else:
                score = tgt.score(out)
                start = _start(out, score, relevance)
            seed = start if program.seed_is_relevance else safe_ratio(start, out.detach())
            sinks = [t for _, t in state.sinks.values()]
            grad, *sink_grads = torch.autograd.grad(out, [leaf, *sinks], seed,
                                                    retain_graph=bool(state.sides),
                                                    allow_unused=True)
            attribution = leaf.detach() * grad if grad is not None else torch.zeros_like(x)
            side = side_relevance(state.sides.values(), leaf)
            attribution = attribution + side if side is not None else attribution
        start_sum = start.reshape(len(start), -1).sum(1).detach()
        layers = conservation_report(program, state, start_sum, attribution, sink_grads) \
            if explain else {}
        return attribution.detach(), score.detach(), start_sum, tgt, layers


#: A tiny (not zero) heatmap is an error only where one layer passed on at most this fraction of
#: the relevance it received (stabilisers outweighing vanishing activations, 1e-10 on timm's
#: mobilenetv4_hybrid_medium at init); many layers each keeping a few per cent (z+ discarding
#: negative shares on random CNNs: GoogLeNet, MNASNet, MobileNetV2) are the rules' own answer.
WORN_AWAY = 1e-4


def _report_broken(lrp: LRP, program: Program, x: Tensor, target: TargetLike,
                   relevance: RelevanceLike, hooks: Mapping[str, RelevanceHook] | None,
                   attribution: Tensor, gone: list[int]
                   ) -> tuple[dict[str, Tensor], list[int] | None]:
    """The per-layer report that names where relevance broke, and the samples its rows
    are (None: every sample). From a rerun of the broken samples (not finite, or ``gone``)
    alone where that is the same computation (class-index or no target, the default start,
    no hooks; a batch with every sample broken, or a program that does not reproduce the
    model at the smaller batch size, reruns whole). Metrics explain digits translated out
    of view, say: one blank image must not cost its whole batch twice."""
    flat = attribution.reshape(len(attribution), -1)
    broken = ~torch.isfinite(flat).all(1)
    broken[gone] = True
    if hooks is None and relevance is None and not callable(target) \
            and bool(broken.any()) and not bool(broken.all()):
        rows = broken.nonzero()[:, 0]
        index = Target(target, len(x)).index
        subset = None if index is None else index[rows.cpu()]
        again = lrp._run(program, x[rows.to(x.device)], subset, None, True, None)
        if again is not None:
            return again[4], rows.tolist()
    again = lrp._run(program, x, target, relevance, True, hooks)
    return (again[4] if again is not None else {}), None


def _check_rules_forward(program: Program, x: Tensor, out: Tensor) -> None:
    """Raise unless the forward pass of the rules' steps computes what the prepared graph does
    (checked once per program): a step whose forward were wrong would explain another score.
    Every step computes its module's value (only its backward carries the rule), so the two
    differ by rounding at most: the capture's bound for the graph's growth applies."""
    from lumos.lrp.capture.verify import relative_difference, tolerance

    with torch.no_grad():
        plain = program.gm(x.detach())
    rel = relative_difference(out.detach(), plain)
    growth = float(getattr(program.gm, "lumos_growth", 1.0))
    if rel is not None and not rel <= tolerance(plain, growth):
        raise LRPUnsupportedError(
            f"the forward pass of the LRP rules differs from the prepared model by {rel:.3g} "
            "of the output's scale; please report it with the model's code")
    program.rules_checked = True


def _vanished(attribution: Tensor, start: Tensor) -> list[int]:
    """The samples whose heatmap is zero, or below its dtype's rounding of the start relevance
    (``sum|R| <= eps |start|``), although their start relevance is not zero."""
    total = attribution.reshape(len(attribution), -1).abs().sum(1)
    eps = torch.finfo(attribution.dtype).eps
    return ((total <= eps * start.abs()) & (start != 0)).nonzero()[:, 0].tolist()


def _discards(program: Program, where: str | None) -> bool:
    """Whether the layer where relevance vanished has a rule that explains positive evidence
    only (z+, alpha-beta, gamma): then a heatmap of zeros is that rule's answer, not a fault."""
    rule = next((r for node, r in program.node_rules.items() if program.name(node) == where),
                None)
    return rule is not None and any(t.inputs in ("pos", "neg") for t in rule.terms)


def _broken_message(finite: bool, where: str | None) -> str:
    what = "not finite (NaN or infinite)" if finite is False else \
        "zero everywhere although the explained score is not"
    at = "" if where is None else f" ({'first at' if not finite else 'lost at'} '{where}' in " \
        "the backward pass)"
    return (f"the LRP relevance is {what}{at}. Usual causes: float32 overflow or a division "
            "by a near-zero activation (explain in float64: model.double() and x.double()), or "
            "a composite whose rules cannot pass relevance through these layers (try "
            "composites.CPLRP() or a larger epsilon)")


def _absorbed_message(program: Program, absorbed: tuple[str, float], score: float,
                      attribution: Tensor, cut: str | None) -> str:
    layer, fraction = absorbed
    rule = next((r for node, r in program.node_rules.items() if program.name(node) == layer),
                None)
    eps = getattr(rule, "stabilizer", None)
    by = "its rule" if rule is None else f"{rule}" if callable(eps) or eps is None else \
        f"{rule} with stabiliser {eps:g}"
    zero = not bool(attribution.any())
    what = "zero everywhere" if zero else \
        f"below {str(attribution.dtype).removeprefix('torch.')}'s rounding everywhere"
    at = f"; zero from '{cut}' on" if zero and cut is not None else ""
    return (f"the LRP relevance is {what} although the explained score is not ({score:.3g}"
            f"{at}): '{layer}' passes on only {fraction:.2g} of the relevance it receives "
            f"({by}, which outweighs its tiny outputs). The model's activations nearly vanish "
            "on this input (untrained weights, or layer scales initialised near zero, shrink "
            "them layer by layer), so the rules' stabilisers absorb the relevance. Explain a "
            "trained model, or use a composite whose epsilon is far below the activations")


def _start(out: Tensor, score: Tensor | None, relevance: RelevanceLike) -> Tensor:
    """The relevance at the output: ``out * d score / d out`` unless the user gave one."""
    if relevance is None:
        assert score is not None
        (grad,) = torch.autograd.grad(score.sum(), out, retain_graph=True)
        return (out * grad).detach()
    value = relevance(out.detach()) if callable(relevance) else relevance
    if not isinstance(value, Tensor) or value.shape != out.shape:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"relevance must be a tensor shaped like the model output "
                         f"{tuple(out.shape)}, got {shape}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError("relevance contains NaN or infinite values")
    return value.detach().to(out)


__all__ = ["LRP", "PROGRAMS_KEPT", "RelevanceLike"]
