"""A prepared graph with its rules: one step per module call, run in one forward pass.

:class:`Program` asks the composite for each module call's rule, plans the steps
(:mod:`lumos.lrp.engine.dispatch`), and runs the graph with them; what it runs forward carries
relevance backward. When explaining it also records the relevance entering each layer, feeds
constants as tracked copies (sinks), and applies the caller's relevance hooks at the outputs of
the user's modules (:mod:`lumos.lrp.engine.concepts`).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from torch import Tensor, fx

from lumos.lrp import composites as comp
from lumos.lrp.capture.values import OUTPUTS, SHAPE_META
from lumos.lrp.engine.concepts import RelevanceHook, observe
from lumos.lrp.engine.dispatch import StepPlanner
from lumos.lrp.engine.route import Tap
from lumos.lrp.engine.sinks import add_sinks, live_nodes, sink_args
from lumos.lrp.engine.steps import Run, Step
from lumos.lrp.ops.attention import MatMul, Scale
from lumos.lrp.ops.elementwise import Detached
from lumos.lrp.ops.layers import Reshape
from lumos.lrp.rules import Rule


class Program:
    """A prepared graph (:func:`lumos.lrp.prepare`) with one step function per module call."""

    def __init__(self, gm: fx.GraphModule, composite: comp.Composite) -> None:
        self.gm = gm
        self.origin: dict[str, str] = dict(getattr(gm, "lumos_origin", {}))
        #: The input shape (batch dimension left out) the graph holds for.
        self.input_shape: tuple[int, ...] | None = getattr(gm, "lumos_input_shape", None)
        #: The batch size the graph holds for (None: any).
        self.batch: int | None = getattr(gm, "lumos_batch", None)
        #: Batch sizes on which the program reproduced the model.
        self.verified: set[int] = set()
        #: Whether the rules' forward pass has been compared with the prepared graph's.
        self.rules_checked = False
        self.nodes = list(gm.graph.nodes)
        self.output = next(n for n in self.nodes if n.op == "output")
        modules = dict(gm.named_modules())
        calls = [n for n in self.nodes if n.op == "call_module"]
        self.node_rules = _assign_rules(calls, modules, composite, self.name)
        self.rules: dict[str, Rule | None] = {str(n.target): r for n, r in self.node_rules.items()}
        self.live = live_nodes(self.nodes, lambda n: getattr(self.node_rules.get(n), "kind",
                                                             None) == "constant")
        # a factor of a MatMul that depends on constants only is a fixed linear map: no sink
        self.sink_args = sink_args(self.nodes, modules, (Scale, Reshape, Detached, MatMul))
        planner = StepPlanner(modules, self.node_rules, self.output, self.live.__contains__)
        self.steps: dict[fx.Node, Step] = {n: planner.step(n, self.name(n)) for n in calls}
        self.seed_is_relevance = planner.seed_is_relevance
        #: The graph nodes holding the output of each of the user's modules, by path.
        self.outputs: dict[str, list[fx.Node]] = {}
        for node in self.nodes:
            for path in node.meta.get(OUTPUTS, ()):
                self.outputs.setdefault(path, []).append(node)

    def name(self, node: fx.Node) -> str:
        """The user's module path for a prepared node."""
        return self.origin.get(str(node.target), str(node.target))

    def run(self, x: Tensor, state: Run,
            hooks: Mapping[str, RelevanceHook] | None = None) -> Any:
        """Execute the graph on ``x``, with LRP steps at every module call and ``hooks`` at the
        outputs of the modules they name."""
        env: dict[fx.Node, Any] = {}
        load = lambda a: fx.node.map_arg(a, env.__getitem__)
        hooked = _hooked(self.outputs, hooks or {})
        for node in self.nodes:
            if node.op == "placeholder":
                env[node] = x
            elif node.op == "get_attr":
                env[node] = operator.attrgetter(str(node.target))(self.gm)
            elif node.op == "call_module":
                args = self._explained(node, load(node.args), state, len(x)) if state.explain \
                    else load(node.args)
                env[node] = self.steps[node](state, node, args, load(node.kwargs))
            elif node.op == "call_function":
                fn: Any = node.target
                env[node] = fn(*load(node.args), **load(node.kwargs))
            elif node.op == "call_method":
                args = load(node.args)
                env[node] = getattr(args[0], str(node.target))(*args[1:], **load(node.kwargs))
            else:
                return load(node.args[0])
            for hook in hooked.get(node, ()):
                env[node] = observe(env[node], hook)
        raise RuntimeError("the prepared graph has no output node")

    def _explained(self, node: fx.Node, args: tuple[Any, ...], state: Run,
                   n: int) -> tuple[Any, ...]:
        """``args`` with constants tracked (sinks) and taps recording the relevance entering."""
        if node in self.sink_args:
            args = add_sinks(state.sinks, node, args, self.sink_args[node])
        record: list[Tensor] = []
        state.records[node] = record
        if args and isinstance(args[0], Tensor):
            state.untapped[node] = args[0]
        shapes = [a.meta.get(SHAPE_META) if isinstance(a, fx.Node) else None for a in node.args]
        return tuple(Tap.apply(a, record, n, shape) if isinstance(a, Tensor) and a.requires_grad
                     else a for a, shape in zip(args, shapes, strict=True))


def _assign_rules(calls: list[fx.Node], modules: dict[str, Any], composite: comp.Composite,
                  name: Any) -> dict[fx.Node, Rule | None]:
    """The composite's rule per module call (``first_map`` for the first layer it matches)."""
    found: dict[fx.Node, Rule | None] = {}
    first_open = True
    for node in calls:
        module = modules[str(node.target)]
        found[node] = composite.rule((name(node), str(node.target)), module, first_open)
        if first_open and composite.wants_first(module):
            first_open = False
    return found


def _hooked(outputs: dict[str, list[fx.Node]],
            hooks: Mapping[str, RelevanceHook]) -> dict[fx.Node, list[RelevanceHook]]:
    found: dict[fx.Node, list[RelevanceHook]] = {}
    for path, hook in hooks.items():
        if path not in outputs:
            known = ", ".join(sorted(outputs)[:8])
            raise ValueError(f"no module output '{path}' in the prepared model (module paths of "
                           f"the model, e.g. {known}, ...)")
        for node in outputs[path]:
            found.setdefault(node, []).append(hook)
    return found


__all__ = ["Program"]
