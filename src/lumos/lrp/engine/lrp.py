"""The LRP attributor: one forward and one backward pass through a prepared copy of the model.

``LRP(model, composite)`` prepares a private copy of ``model`` once (torch.fx, BatchNorm folded,
functional ops turned into modules; :mod:`lumos.lrp.capture.prepare`), maps each layer to its rule
with the composite, and runs the copy with autograd functions whose backward pass *is* relevance
propagation (:mod:`lumos.lrp.engine.propagate`). The user's model is never run, changed or hooked.

The prepared copy is cached and re-made when the user's model changes (parameter or buffer
replaced, resized, moved, or modified in place, or a submodule swapped), and, for a copy that
holds for one input size only (torchvision's Swin, :mod:`lumos.lrp.capture.windows`), when an
input of another size comes.
"""

from __future__ import annotations

import itertools
import operator
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, fx, nn

from lumos.attribution.checks import check_input
from lumos.attribution.targets import Target, TargetLike
from lumos.explanation import Explanation
from lumos.lrp import composites as comp
from lumos.lrp.engine.attention import transformer_step
from lumos.lrp.engine.linear import WEIGHTED
from lumos.lrp.engine.products import product_step
from lumos.lrp.engine.propagate import RuleLayer, Tap
from lumos.lrp.engine.report import conservation_report, side_relevance
from lumos.lrp.engine.sinks import add_sinks, live_nodes, sink_args
from lumos.lrp.engine.steps import (
    Run,
    Step,
    is_plain_epsilon,
    norm,
    norm_relu,
    passthrough,
    plain,
    weighted_step,
)
from lumos.lrp.errors import LRPUnsupportedError
from lumos.lrp.ops.attention import Scale
from lumos.lrp.ops.layers import Concat, Reshape, Sum
from lumos.lrp.ops.elementwise import Detached
from lumos.lrp.ops.products import Product
from lumos.lrp.rules import Rule, safe_ratio

RelevanceLike = Tensor | Callable[[Tensor], Tensor] | None
# Layers whose output is >= 0, whose relevance below zero is zero, that keep the sign.
_NONNEG = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Softplus, nn.Hardsigmoid)
_ZERO_BELOW = (nn.ReLU, nn.ReLU6)
_KEEPS_SIGN = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d,
               nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, *comp.AVG_POOL, Sum,
               nn.Flatten, nn.Identity, Reshape, Concat)
# Layers that only move elements: constant-input rules may sit behind them.
_REARRANGE = (Reshape, nn.Flatten, nn.Unflatten, nn.Identity)


class _Program:
    """A prepared graph with one step function per module call."""

    def __init__(self, gm: fx.GraphModule, composite: comp.Composite) -> None:
        self.gm = gm
        self.origin: dict[str, str] = dict(getattr(gm, "lumos_origin", {}))
        #: The input shape (batch dimension left out) the graph holds for; None: any.
        self.input_shape: tuple[int, ...] | None = getattr(gm, "lumos_input_shape", None)
        self.nodes = list(gm.graph.nodes)
        self.output = next(n for n in self.nodes if n.op == "output")
        self.modules = modules = dict(gm.named_modules())
        self.steps: dict[fx.Node, Step] = {}
        self.rules: dict[str, Rule | None] = {}
        self.seed_is_relevance = False
        self.absorbed: set[fx.Node] = set()
        first_open = True
        calls = [n for n in self.nodes if n.op == "call_module"]
        self.node_rules: dict[fx.Node, Rule | None] = {}
        for node in calls:
            module = modules[str(node.target)]
            rule = composite.rule((self.name(node), str(node.target)), module, first_open)
            if first_open and composite.wants_first(module):
                first_open = False
            self.node_rules[node] = rule
            self.rules[str(node.target)] = rule
        self.live = live_nodes(self.nodes, lambda n: getattr(self.node_rules.get(n), "kind",
                                                             None) == "constant")
        self.sink_args = sink_args(self.nodes, modules, (Scale,))
        for node in calls:
            self.steps[node] = self._step(node, modules[str(node.target)], self.name(node),
                                          self.node_rules[node])

    def name(self, node: fx.Node) -> str:
        """The user's module path for a prepared node."""
        return self.origin.get(str(node.target), str(node.target))

    def _step(self, node: fx.Node, module: nn.Module, name: str, rule: Rule | None) -> Step:
        if node in self.absorbed:  # a ReLU that the layer before already applied
            return lambda run, node, args, kwargs: args[0]
        if rule is None:
            rule = _default_rule(module)
        special = transformer_step(module, rule, lambda: [a in self.live for a in node.args
                                                          if isinstance(a, fx.Node)])
        if special is not None:
            return special
        if rule.kind == "gradient":
            return plain(module)
        if rule.kind == "pass":
            return passthrough(module, name)
        if rule.kind == "product":
            if not isinstance(module, Product):
                raise LRPUnsupportedError(f"rule {rule.name} is for products of activations, "
                                          f"but '{name}' is {type(module).__name__}")
            return product_step(module, rule)
        weighted = isinstance(module, WEIGHTED)
        if rule.kind == "norm" or (not weighted and is_plain_epsilon(rule)):
            relu = self._fusable_relu(node)
            if relu is not None and isinstance(rule.stabilizer, float) and rule.stabilizer > 0:
                self.absorbed.add(relu)
                return norm_relu(module, rule.stabilizer)
            return norm(module, rule.stabilizer)
        if not weighted:
            raise LRPUnsupportedError(
                f"rule {rule.name} needs a layer with weights (Linear, Conv, Affine), but "
                f"'{name}' is {type(module).__name__}; map it to Pass, Norm or Gradient instead")
        if rule.constant_inputs and not self._reads_input(node):
            raise LRPUnsupportedError(
                f"rule {rule.name} gives relevance to constant inputs and must sit on a layer "
                f"that reads the model input; '{name}' does not. Use it in first_map only")
        users = list(node.users)
        at_output = users == [self.output] and self.output.args[0] is node
        self.seed_is_relevance = self.seed_is_relevance or at_output
        relu_after = bool(users) and all(self._is_relu(u) for u in users)
        relu = self._fusable_relu(node)
        if relu is not None:
            self.absorbed.add(relu)
        return weighted_step(RuleLayer(module, rule, relevance_in=at_output,
                                   nonneg_input=self._nonneg(node.args[0]),
                                   relu_after=relu_after, fuse_relu=relu is not None))

    def _fusable_relu(self, node: fx.Node) -> fx.Node | None:
        """The node's only user when that is a plain ReLU whose rule is its gradient."""
        users = list(node.users)
        if (len(users) == 1 and isinstance(self._module(users[0]), nn.ReLU)
                and self._is_relu(users[0])):
            return users[0]
        return None

    def _module(self, node: object) -> nn.Module | None:
        if isinstance(node, fx.Node) and node.op == "call_module":
            return self.modules[str(node.target)]
        return None

    def _is_relu(self, node: fx.Node) -> bool:
        rule = self.node_rules.get(node)
        return isinstance(self._module(node), _ZERO_BELOW) and (
            rule is None or rule.kind in ("pass", "gradient"))

    def _nonneg(self, node: object, depth: int = 0) -> bool:
        """Whether a node's value is non-negative by construction (ReLU, pooling of ReLU)."""
        module = self._module(node)
        if module is None or depth > 50:
            return False
        if isinstance(module, _NONNEG):
            return True
        assert isinstance(node, fx.Node)
        if isinstance(module, _KEEPS_SIGN):
            tensors = [a for a in node.args if isinstance(a, fx.Node)]
            return bool(tensors) and all(self._nonneg(a, depth + 1) for a in tensors)
        return False

    def _reads_input(self, node: fx.Node) -> bool:
        arg = node.args[0] if node.args else None
        modules = dict(self.gm.named_modules())
        while isinstance(arg, fx.Node):
            if arg.op == "placeholder":
                return True
            if arg.op != "call_module" or not isinstance(modules[str(arg.target)], _REARRANGE):
                return False
            arg = arg.args[0] if arg.args else None
        return False

    def run(self, x: Tensor, state: Run) -> Any:
        """Execute the graph on ``x``, with LRP steps at every module call."""
        env: dict[fx.Node, Any] = {}
        placeholders = 0
        load = lambda a: fx.node.map_arg(a, env.__getitem__)
        for node in self.nodes:
            if node.op == "placeholder":
                env[node] = x if placeholders == 0 else (node.args[0] if node.args else None)
                placeholders += 1
            elif node.op == "get_attr":
                env[node] = operator.attrgetter(str(node.target))(self.gm)
            elif node.op == "call_module":
                args, kwargs = load(node.args), load(node.kwargs)
                if state.explain and node in self.sink_args:
                    args = add_sinks(state.sinks, node, args, self.sink_args[node])
                if state.explain:
                    record: list[Tensor] = []
                    state.records[node] = record
                    if args and isinstance(args[0], Tensor):
                        state.untapped[node] = args[0]
                    args = tuple(Tap.apply(a, record) if isinstance(a, Tensor) and a.requires_grad
                                 else a for a in args)
                env[node] = self.steps[node](state, node, args, kwargs)
            elif node.op == "call_function":
                fn: Any = node.target
                env[node] = fn(*load(node.args), **load(node.kwargs))
            elif node.op == "call_method":
                args = load(node.args)
                env[node] = getattr(args[0], str(node.target))(*args[1:], **load(node.kwargs))
            else:
                return load(node.args[0])
        raise RuntimeError("the prepared graph has no output node")


def _default_rule(module: nn.Module) -> Rule:
    from lumos.lrp import rules

    if isinstance(module, comp.ACTIVATION):
        return rules.Pass()
    if isinstance(module, Detached):
        return rules.Detach()
    if isinstance(module, Product):
        return rules.DEFAULT_PRODUCT()
    if isinstance(module, (*comp.SUM, *comp.AVG_POOL)):
        return rules.Norm()
    return rules.Gradient()


#: Prepared programs an :class:`LRP` keeps for models whose graph depends on the input shape.
PROGRAMS_KEPT = 4


def _fingerprint(model: nn.Module) -> tuple[Any, ...]:
    """Cheap identity of everything preparation copies: tensors, their versions, the modules."""
    tensors = tuple((id(t), t._version, t.data_ptr(), t.dtype, t.device, tuple(t.shape))
                    for t in itertools.chain(model.parameters(), model.buffers()))
    return tensors, tuple(id(m) for m in model.modules())


def _prepare(model: nn.Module, example: Tensor) -> fx.GraphModule:
    from lumos.lrp.capture.prepare import prepare

    gm = prepare(model, example)
    if example.device.type == "cpu":  # oneDNN convolutions are faster with channels-last weights
        for module in gm.modules():
            if isinstance(module, nn.Conv2d):
                module.to(memory_format=torch.channels_last)
    for p in gm.parameters():
        p.requires_grad_(False)
    return gm


class LRP:
    """Layer-wise Relevance Propagation at about the cost of one gradient.

    Parameters
    ----------
    model : nn.Module
        Any traceable classifier; it is never modified (a private prepared copy is used).
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
        self.model = model
        self.composite = composite
        self._program: _Program | None = None
        #: Prepared programs by input shape (``None``: one that takes any shape), most recent
        #: last; all dropped when the user's model changes.
        self._programs: OrderedDict[tuple[int, ...] | None, _Program] = OrderedDict()
        self._key: tuple[Any, ...] | None = None

    def program(self, example: Tensor) -> _Program:
        """The prepared model with its rules, re-made when the user's model changed.

        A graph specialised to one input shape (torchvision's Swin) is prepared once per
        shape; the last :data:`PROGRAMS_KEPT` shapes stay prepared (each holds a copy of
        the model), so inputs of alternating sizes are not prepared again each call.
        """
        key = _fingerprint(self.model)
        if key != self._key:
            self._programs.clear()
            self._key = key
        shape = tuple(example.shape[1:])
        slot: tuple[int, ...] | None = shape if shape in self._programs else None
        program = self._programs.get(slot)
        if program is None:
            program = _Program(_prepare(self.model, example.detach()[:1]), self.composite)
            slot = program.input_shape
            self._programs[slot] = program
            while len(self._programs) > PROGRAMS_KEPT:
                self._programs.popitem(last=False)
        self._programs.move_to_end(slot)
        self._program = program
        return program

    @property
    def rules(self) -> dict[str, Rule | None]:
        """Rule per module of the last prepared model, by prepared module name (the user's path
        for modules that came from the model); ``None``: the layer kind's default."""
        return {} if self._program is None else dict(self._program.rules)

    def attribute(self, inputs: Tensor, target: TargetLike = None,
                  relevance: RelevanceLike = None) -> Tensor:
        """Input relevance, shaped like ``inputs``.

        Parameters
        ----------
        inputs : Tensor
            A batch ``(N, ...)`` of finite floating-point inputs.
        target : int, sequence, LongTensor, callable or None
            What to explain (see :mod:`lumos.attribution.targets`).
        relevance : Tensor or callable, optional
            Replaces the start relevance at the output (default ``f_t(x)`` at the target class
            and zero elsewhere): a tensor shaped like the output, or ``output -> tensor``.
        """
        return self._propagate(inputs, target, relevance, explain=False)[0]

    def explain(self, inputs: Tensor, target: TargetLike = None,
                relevance: RelevanceLike = None) -> Explanation:
        """Relevance plus a conservation report.

        ``layers`` holds, from output to input, the per-sample relevance sum leaving the output
        (``"output"``), entering each layer's inputs after its rule (by module path) and at the
        model input (``"input"``). ``delta`` is ``sum(relevance) - sum(start relevance)``, i.e.
        ``sum(R_input) - f_t(x)`` for the default start.
        """
        attribution, score, start, target_obj, layers = self._propagate(
            inputs, target, relevance, explain=True)
        total = attribution.reshape(len(attribution), -1).sum(1)
        return Explanation(attribution=attribution, output=score, method="lrp",
                           target=None if target_obj.classes is None else
                           target_obj.classes.clone(),
                           delta=total - start, layers=layers)

    def _propagate(self, inputs: Tensor, target: TargetLike, relevance: RelevanceLike,
                   explain: bool) -> tuple[Tensor, Tensor, Tensor, Target, dict[str, Tensor]]:
        x = check_input(inputs)
        program = self.program(x)
        tgt = Target(target, x.shape[0])
        state = Run(explain)
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            out = program.run(leaf, state)
            if not isinstance(out, Tensor) or out.dim() == 0 or out.shape[0] != x.shape[0]:
                raise ValueError("LRP needs a model that returns one tensor with one row per "
                                 "input")
            if relevance is not None and target is None:  # the start needs no target
                start = _start(out, None, relevance)
                score = start.reshape(len(start), -1).sum(1)
            else:
                score = tgt.score(out)
                start = _start(out, score, relevance)
            seed = start if program.seed_is_relevance else safe_ratio(start, out.detach())
            has_side = any(True for _ in state.sides)
            sinks = [t for _, t in state.sinks.values()]
            grad, *sink_grads = torch.autograd.grad(out, [leaf, *sinks], seed,
                                                    retain_graph=has_side, allow_unused=True)
            attribution = leaf.detach() * grad if grad is not None else torch.zeros_like(x)
            side = side_relevance(state.sides.values(), leaf)
            attribution = attribution + side if side is not None else attribution
        start_sum = start.reshape(len(start), -1).sum(1).detach()
        layers = conservation_report(program, state, start_sum, attribution, sink_grads) \
            if explain else {}
        return attribution.detach(), score.detach(), start_sum, tgt, layers


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
