"""Which step runs each module call of a prepared graph, given the composite's rule for it.

:class:`StepPlanner` looks at a node, its module, its rule and its neighbours: a weighted layer
gets a :class:`~lumos.lrp.engine.rulelayer.RuleLayer` (told whether its input is non-negative,
whether a ReLU follows, and whether it produces the model output), a ReLU that only follows one
such layer is applied by that layer (it is *absorbed*), element-wise layers get Pass, sums and
pooling Norm, products, attention and normalisations their own steps.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import fx, nn

from lumos.lrp import composites as comp
from lumos.lrp import rules
from lumos.lrp.engine.attention import transformer_step
from lumos.lrp.engine.linear import WEIGHTED
from lumos.lrp.engine.products import product_step
from lumos.lrp.engine.rulelayer import RuleLayer
from lumos.lrp.engine.steps import (
    Step,
    is_plain_epsilon,
    norm,
    norm_relu,
    passthrough,
    plain,
    weighted_step,
)
from lumos.lrp.errors import LRPUnsupportedError
from lumos.lrp.ops.elementwise import Detached
from lumos.lrp.ops.layers import Concat, Reshape, Sum
from lumos.lrp.ops.products import Product
from lumos.lrp.rules import Rule

# Layers whose output is >= 0; ReLUs, whose relevance below zero is zero; layers that keep the
# sign of their inputs; layers that only move elements (constant-input rules may sit behind).
_NONNEG = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Softplus, nn.Hardsigmoid)
_ZERO_BELOW = (nn.ReLU, nn.ReLU6)
_KEEPS_SIGN = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d,
               nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, *comp.AVG_POOL, Sum,
               nn.Flatten, nn.Identity, Reshape, Concat)
_REARRANGE = (Reshape, nn.Flatten, nn.Unflatten, nn.Identity)


def default_rule(module: nn.Module) -> Rule:
    """The rule of a layer no composite entry matches."""
    if isinstance(module, comp.ACTIVATION):
        return rules.Pass()
    if isinstance(module, Detached):
        return rules.Detach()
    if isinstance(module, Product):
        return rules.DEFAULT_PRODUCT()
    if isinstance(module, (*comp.SUM, *comp.AVG_POOL)):
        return rules.Norm()
    return rules.Gradient()


def shown_type(module: nn.Module) -> str:
    """The layer's type as the user knows it (a prepared stand-in names the type it stands for)."""
    return str(getattr(module, "shown_as", type(module).__name__))


class StepPlanner:
    """Plans the steps of one program (see the module docstring)."""

    def __init__(self, modules: dict[str, nn.Module], node_rules: dict[fx.Node, Rule | None],
                 output: fx.Node, live: Callable[[fx.Node], bool]) -> None:
        self.modules, self.node_rules, self.output, self.live = modules, node_rules, output, live
        #: ReLUs applied by the layer before them.
        self.absorbed: set[fx.Node] = set()
        #: Whether the model output comes straight out of a weighted layer.
        self.seed_is_relevance = False

    def step(self, node: fx.Node, name: str) -> Step:
        """The step of ``node`` (a module call, known to the user as ``name``)."""
        module, rule = self.modules[str(node.target)], self.node_rules[node]
        if node in self.absorbed:  # a ReLU that the layer before already applied
            return lambda run, node, args, kwargs: args[0]
        rule = default_rule(module) if rule is None else rule
        special = transformer_step(module, rule, lambda: [self.live(a) for a in node.args
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
                                          f"but '{name}' is {shown_type(module)}")
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
                f"'{name}' is {shown_type(module)}; map it to Pass, Norm or Gradient instead")
        return self._weighted(node, module, rule, name)

    def _weighted(self, node: fx.Node, module: nn.Module, rule: Rule, name: str) -> Step:
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
        while isinstance(arg, fx.Node):
            if arg.op == "placeholder":
                return True
            if arg.op != "call_module" or not isinstance(self.modules[str(arg.target)],
                                                          _REARRANGE):
                return False
            arg = arg.args[0] if arg.args else None
        return False


__all__ = ["StepPlanner", "default_rule"]
