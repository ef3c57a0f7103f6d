"""Which rule where: composites map the layers of a prepared model to LRP rules.

A :class:`Composite` looks a layer up in this order: by module name (``name_map``; the original
module path, e.g. ``"features.0"``, or the prepared one), then, for the first weighted layer the
model input reaches, in ``first_map``, then by layer group in ``layer_map`` (``isinstance``, so
subclasses and every convolution dimension match). Layers that match nothing keep the default of
their kind: Pass for activations, Norm for sums and average pooling, and the plain gradient for
everything else (for a weighted layer that is LRP-0).

The named composites match Zennit 0.5.1's composites of the same names, defaults included, so
their results compare one to one: EpsilonPlus, EpsilonGammaBox, EpsilonAlpha2Beta1,
EpsilonPlusFlat, EpsilonAlpha2Beta1Flat. :class:`Epsilon` uses one epsilon rule for every weighted
layer, unfolded BatchNorm and Norm step. A BatchNorm that preparation could not fold (an
:class:`~lumos.lrp.ops.layers.Affine`) gets Pass in the other named composites, as Zennit's
composites do for BatchNorm. Products of activations (:mod:`lumos.lrp.ops.products`) get the
constant-gate rule in every named composite (see :func:`base_map`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor, nn

from lumos.lrp import rules
from lumos.lrp.ops.attention import MATMUL, PROJECTION, SOFTMAX
from lumos.lrp.ops.elementwise import Power
from lumos.lrp.ops.layers import Affine, Difference, Mean, Resample, Sum
from lumos.lrp.ops.norms import NORMS
from lumos.lrp.ops.products import Product
from lumos.lrp.ops.reductions import Summation
from lumos.lrp.rules import Rule, StabilizerLike

Group = type | tuple[type, ...]
LayerMapLike = Sequence[tuple[Group, Rule]]
NameMapLike = Sequence[tuple[str | Sequence[str], Rule]]

#: Layer groups for ``layer_map`` / ``first_map`` (matched with ``isinstance``).
CONVOLUTION: tuple[type, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
DENSE: tuple[type, ...] = (nn.Linear,)
WEIGHTED: tuple[type, ...] = (*CONVOLUTION, *DENSE)
ACTIVATION: tuple[type, ...] = (
    nn.ELU, nn.Hardshrink, nn.Hardsigmoid, nn.Hardtanh, nn.Hardswish, nn.LeakyReLU, nn.LogSigmoid,
    nn.PReLU, nn.ReLU, nn.ReLU6, nn.RReLU, nn.SELU, nn.CELU, nn.GELU, nn.Sigmoid, nn.SiLU,
    nn.Mish, nn.Softplus, nn.Softshrink, nn.Softsign, nn.Tanh, nn.Tanhshrink, nn.Threshold,
    Power)
#: Average pooling, means and sums over dimensions (pooling by sum).
AVG_POOL: tuple[type, ...] = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
                              nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, Mean, Summation)
SUM: tuple[type, ...] = (Sum, Difference)
AFFINE: tuple[type, ...] = (Affine, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: Element-wise products of activations (gates, squeeze-excitation): :mod:`lumos.lrp.ops.products`.
PRODUCT: tuple[type, ...] = (Product,)
#: Interpolation (``F.interpolate``, ``nn.Upsample``): fixed linear maps without parameters.
RESAMPLE: tuple[type, ...] = (Resample,)


def base_map(stabilizer: StabilizerLike = 1e-6,
             affine: Rule | None = None) -> list[tuple[Group, Rule]]:
    """The defaults every named composite starts with (as in Zennit's ``layer_map_base``).

    Pass on activations and unfolded BatchNorms (``affine`` replaces that rule), Norm on sums,
    average pooling and resampling, and the constant-gate rule on products: a gate
    (squeeze-excitation's sigmoid scale) only re-weights the channels of its input, so the
    relevance stays on the gated path (CP-LRP; relevance sent into the gate branch would end in
    a global average pool and spread evenly over the image).
    """
    return [(ACTIVATION, rules.Pass()), (SUM, rules.Norm(stabilizer)),
            (AVG_POOL, rules.Norm(stabilizer)), (RESAMPLE, rules.Norm(stabilizer)),
            (AFFINE, affine if affine is not None else rules.Pass()),
            (PRODUCT, rules.DEFAULT_PRODUCT()),
            *_transformer_map()]


def _transformer_map(softmax: Rule | None = None) -> list[tuple[Group, Rule]]:
    """AttnLRP in attention and on norms (defaults of every named composite): the identity rule
    on normalisations, the uniform split of products of two activations (attention scores,
    weights times values), gradient times input through softmax."""
    return [(NORMS, rules.StdConstant()), (MATMUL, rules.Uniform()),
            (SOFTMAX, softmax or rules.AttnSoftmax())]


@dataclass
class Composite:
    """A mapping from the layers of a model to LRP rules.

    Parameters
    ----------
    layer_map : sequence of (type or tuple of types, Rule)
        Rules by layer group, first match wins (e.g. ``[(composites.CONVOLUTION, Gamma())]``).
    first_map : sequence of (type or tuple of types, Rule)
        Rules for the first weighted layer in execution order that matches one of the groups.
    name_map : sequence of (name or names, Rule)
        Rules by module path; these win over everything else.
    """

    layer_map: LayerMapLike = ()
    first_map: LayerMapLike = ()
    name_map: NameMapLike = ()
    _names: dict[str, Rule] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        for names, rule in self.name_map:
            for name in [names] if isinstance(names, str) else names:
                self._names.setdefault(name, rule)
        for group, rule in [*self.layer_map, *self.first_map]:
            _check_entry(group, rule)

    def rule(self, names: Sequence[str], module: nn.Module, first: bool) -> Rule | None:
        """The rule for a layer known by ``names``; ``first`` while no first rule was given.

        Returns ``None`` when nothing matches (the engine then uses the kind's default).
        """
        for name in names:
            if name in self._names:
                return self._names[name]
        if first:
            found = _match(self.first_map, module)
            if found is not None:
                return found
        return _match(self.layer_map, module)

    def wants_first(self, module: nn.Module) -> bool:
        """Whether ``module`` would take the ``first_map`` rule if it came first."""
        return _match(self.first_map, module) is not None


def _check_entry(group: object, rule: object) -> None:
    groups = group if isinstance(group, tuple) else (group,)
    if not groups or not all(isinstance(g, type) for g in groups):
        raise TypeError(f"a layer map entry needs a module type or a tuple of types, got {group!r}")
    if not isinstance(rule, Rule):
        raise TypeError(f"a layer map entry needs a rule from lumos.lrp.rules, got {rule!r}")


def _match(layer_map: LayerMapLike, module: nn.Module) -> Rule | None:
    return next((rule for group, rule in layer_map if isinstance(module, group)), None)


class LayerMap(Composite):
    """A custom composite by layer group, e.g. ``LayerMap([(CONVOLUTION, Gamma())])``.

    The defaults of :func:`base_map` are appended, so activations, sums and pooling keep their
    usual rules unless ``layer_map`` says otherwise.
    """

    def __init__(self, layer_map: LayerMapLike, first_map: LayerMapLike = (),
                 name_map: NameMapLike = ()) -> None:
        super().__init__([*layer_map, *base_map()], list(first_map), list(name_map))


class NameMap(Composite):
    """A custom composite by module name, e.g. ``NameMap([("features.0", ZBox(-3, 3))])``.

    ``layer_map`` (optional) covers the layers no name matches; :func:`base_map` follows it.
    """

    def __init__(self, name_map: NameMapLike, layer_map: LayerMapLike = ()) -> None:
        super().__init__([*layer_map, *base_map()], (), list(name_map))


def _named(layer_map: LayerMapLike, stabilizer: StabilizerLike, conv: Rule, dense: Rule,
           first_map: LayerMapLike = (), affine: Rule | None = None
           ) -> tuple[list[tuple[Group, Rule]], list[tuple[Group, Rule]]]:
    return ([*layer_map, *base_map(stabilizer, affine), (CONVOLUTION, conv), (DENSE, dense)],
            list(first_map))


class Epsilon(Composite):
    """One LRP-epsilon rule everywhere (``epsilon=0``: LRP-0).

    Convolutions, linear layers and unfolded BatchNorms (:class:`~lumos.lrp.ops.layers.Affine`) get
    ``rules.Epsilon(epsilon)``; sums, average pooling and resampling the Norm rule with the same
    ``epsilon`` as stabiliser (unless ``stabilizer`` is given); activations Pass and products
    the constant-gate rule.
    """

    def __init__(self, epsilon: StabilizerLike = 1e-6, stabilizer: StabilizerLike | None = None,
                 layer_map: LayerMapLike = ()) -> None:
        rule = rules.Epsilon(epsilon)
        norm = epsilon if stabilizer is None else stabilizer
        super().__init__(*_named(layer_map, norm, rule, rule, affine=rule))


class EpsilonPlus(Composite):
    """z+ on convolutions, epsilon on linear layers."""

    def __init__(self, epsilon: StabilizerLike = 1e-6, stabilizer: StabilizerLike = 1e-6,
                 layer_map: LayerMapLike = (), zero_bias: bool = False) -> None:
        super().__init__(*_named(layer_map, stabilizer, rules.ZPlus(stabilizer, zero_bias),
                                 rules.Epsilon(epsilon, zero_bias)))


class EpsilonAlpha2Beta1(Composite):
    """alpha=2, beta=1 on convolutions, epsilon on linear layers."""

    def __init__(self, epsilon: StabilizerLike = 1e-6, stabilizer: StabilizerLike = 1e-6,
                 layer_map: LayerMapLike = (), zero_bias: bool = False) -> None:
        super().__init__(*_named(layer_map, stabilizer,
                                 rules.AlphaBeta(2.0, 1.0, stabilizer, zero_bias),
                                 rules.Epsilon(epsilon, zero_bias)))


class EpsilonGammaBox(Composite):
    """ZBox on the first convolution, gamma on the other convolutions, epsilon on linear layers.

    Parameters
    ----------
    low, high : float or Tensor
        The lowest and highest possible input values (per channel as ``(1, C, 1, 1)`` tensors
        for normalised images).
    """

    def __init__(self, low: float | Tensor, high: float | Tensor, epsilon: StabilizerLike = 1e-6,
                 gamma: float = 0.25, stabilizer: StabilizerLike = 1e-6,
                 layer_map: LayerMapLike = (), first_map: LayerMapLike = (),
                 zero_bias: bool = False) -> None:
        super().__init__(*_named(
            layer_map, stabilizer, rules.Gamma(gamma, stabilizer, zero_bias),
            rules.Epsilon(epsilon, zero_bias),
            [*first_map, (CONVOLUTION, rules.ZBox(low, high, stabilizer, zero_bias))]))


class EpsilonPlusFlat(Composite):
    """Flat on the first weighted layer, z+ on other convolutions, epsilon on linear layers."""

    def __init__(self, epsilon: StabilizerLike = 1e-6, stabilizer: StabilizerLike = 1e-6,
                 layer_map: LayerMapLike = (), first_map: LayerMapLike = (),
                 zero_bias: bool = False) -> None:
        super().__init__(*_named(layer_map, stabilizer, rules.ZPlus(stabilizer, zero_bias),
                                 rules.Epsilon(epsilon, zero_bias),
                                 [*first_map, (WEIGHTED, rules.Flat(stabilizer))]))


class EpsilonAlpha2Beta1Flat(Composite):
    """Flat on the first weighted layer, alpha2-beta1 on other convolutions, epsilon on dense."""

    def __init__(self, epsilon: StabilizerLike = 1e-6, stabilizer: StabilizerLike = 1e-6,
                 layer_map: LayerMapLike = (), first_map: LayerMapLike = (),
                 zero_bias: bool = False) -> None:
        super().__init__(*_named(layer_map, stabilizer,
                                 rules.AlphaBeta(2.0, 1.0, stabilizer, zero_bias),
                                 rules.Epsilon(epsilon, zero_bias),
                                 [*first_map, (WEIGHTED, rules.Flat(stabilizer))]))


class AttnLRP(Composite):
    """AttnLRP (Achtibat et al. 2024): epsilon (or gamma) on Linear / Conv, the uniform rule on
    products of activations, gradient times input through softmax, the identity rule on
    normalisations (``1 / std`` constant) and smooth activations, sums split in proportion.

    Parameters
    ----------
    epsilon : float
        Stabiliser of the epsilon rule on linear and convolutional layers (and unfolded
        BatchNorms).
    gamma : float, optional
        When set, LRP-gamma with this gamma (stabiliser ``epsilon``) replaces epsilon on linear
        and convolutional layers.
    projection_epsilon : float
        Epsilon on the projections inside ``nn.MultiheadAttention`` (group ``PROJECTION``);
        0 (LRP-0, their plain gradient) as in LXT's CP-LRP for torchvision's ViT.
    """

    softmax: Rule = rules.AttnSoftmax()
    product: Rule = rules.Uniform()

    def __init__(self, epsilon: float = 1e-6, gamma: float | None = None,
                 projection_epsilon: float = 0.0, layer_map: LayerMapLike = (),
                 name_map: NameMapLike = ()) -> None:
        linear = rules.Epsilon(epsilon) if gamma is None else rules.Gamma(gamma, epsilon)
        super().__init__([*layer_map, (PROJECTION, rules.Epsilon(projection_epsilon)),
                          (ACTIVATION, rules.Pass()), (SUM, rules.Gradient()),
                          (AVG_POOL, rules.Gradient()), (RESAMPLE, rules.Gradient()),
                          (PRODUCT, self.product), *_transformer_map(self.softmax),
                          (AFFINE, rules.Epsilon(epsilon)), (WEIGHTED, linear)],
                         (), list(name_map))


class CPLRP(AttnLRP):
    """CP-LRP (Ali et al. 2022): as :class:`AttnLRP`, but the attention weights (the softmax
    output) and gates are constants, so relevance flows through the values and the gated inputs
    only (LXT's rule inside ViT attention)."""

    softmax: Rule = rules.ConstantWeights()
    product: Rule = rules.ConstantGate()


__all__ = [
    "ACTIVATION",
    "AFFINE",
    "AVG_POOL",
    "CONVOLUTION",
    "CPLRP",
    "DENSE",
    "MATMUL",
    "NORMS",
    "PRODUCT",
    "PROJECTION",
    "RESAMPLE",
    "SOFTMAX",
    "SUM",
    "WEIGHTED",
    "AttnLRP",
    "Composite",
    "Epsilon",
    "EpsilonAlpha2Beta1",
    "EpsilonAlpha2Beta1Flat",
    "EpsilonGammaBox",
    "EpsilonPlus",
    "EpsilonPlusFlat",
    "LayerMap",
    "NameMap",
    "base_map",
]
