"""LRP rules as data: which inputs, which weights, how to stabilise, how to combine.

A rule for a layer with weights (Linear, ConvNd, :class:`~lumos.lrp.ops.layers.Affine`) is a list
of :class:`Term` s. Term ``t`` runs the layer on a modified input ``in_t(x)`` with modified
parameters ``(rho_t(W), rho_t(b))``; the terms of one *group* add up (with ``sign``) to the
group's denominator ``d_g``, and the input relevance is

    R_x = sum_t coef_t * in_t(x) * J_t^T (mask_g * R_out / stabilise(d_g)),

where ``J_t`` is the modified layer's Jacobian and ``mask_g`` selects the outputs the group
explains (all of them, or only those where the layer's output is positive or negative). This is
the form of Montavon et al. 2019 (and of Zennit 0.5.1, whose conventions these rules follow so
results compare one to one: default stabiliser 1e-6 added with the sign of the denominator,
sign(0) = +1). The engine evaluates a rule in one forward and one backward pass.

Parameter modifiers are data too: a pair ``(a, b)`` means ``a * p + b * max(p, 0)`` (so
``(0, 1)`` is ``p+`` and ``(1, -1)`` is ``p-``), ``"ones"`` and ``"square"`` are what they say and
``None`` (for a bias) means zero.

Rules for layers without weights: :func:`Pass` (relevance goes through unchanged; element-wise
activations), :func:`Norm` (proportional split ``R_i = x_i * dy/dx_i * R / y``; sums, average
pooling, means) and :func:`Gradient` (relevance follows the plain gradient: max-pooling winner
takes all, reshapes, concatenation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

import torch
from torch import Tensor

#: A float adds ``eps * sign(d)`` to a denominator ``d``; a callable replaces the stabiliser.
StabilizerLike: TypeAlias = "float | Callable[[Tensor], Tensor]"
#: ``(a, b)`` -> ``a * p + b * p.clamp(min=0)``; ``"ones"``; ``"square"``.
ParamMod: TypeAlias = "tuple[float, float] | Literal['ones', 'square']"
#: Where a term's input comes from: the layer input, its positive / negative part, ones, or the
#: ZBox bounds.
InputMod: TypeAlias = Literal["x", "pos", "neg", "ones", "low", "high"]
BoundLike: TypeAlias = "float | Tensor"

IDENTITY: ParamMod = (1.0, 0.0)
POSITIVE: ParamMod = (0.0, 1.0)
NEGATIVE: ParamMod = (1.0, -1.0)


@dataclass(frozen=True)
class Term:
    """One modified forward pass of a layer inside a rule (see the module docstring)."""

    inputs: InputMod
    weight: ParamMod
    bias: ParamMod | None
    sign: float = 1.0
    coef: float = 1.0
    group: int = 0


@dataclass(frozen=True)
class Rule:
    """An LRP rule: a name, its terms and group masks (for weighted layers), and a stabiliser.

    ``kind`` is ``"linear"`` for rules made of terms, ``"pass"``, ``"norm"`` or ``"gradient"``
    for rules of layers without weights, ``"product"`` for element-wise products of two
    activations (:mod:`lumos.lrp.ops.products`; ``gate``: the gate factor is held constant). Build
    rules with the functions of this module and of :mod:`lumos.lrp.ops.products`;
    ``"constant"`` (the output is a constant) and ``"std-constant"`` (normalisation by a constant
    std) come from :mod:`lumos.lrp.ops.attention` and :mod:`lumos.lrp.ops.norms`.
    """

    name: str
    kind: Literal["linear", "pass", "norm", "gradient", "product", "constant", "std-constant"]
    terms: tuple[Term, ...] = ()
    masks: tuple[Literal["all", "pos", "neg"], ...] = ("all",)
    stabilizer: StabilizerLike = 1e-6
    low: BoundLike | None = None
    high: BoundLike | None = None
    gate: bool = False

    def __repr__(self) -> str:
        return f"{self.name}()"

    @property
    def constant_inputs(self) -> bool:
        """Whether a term reads something other than the layer input (ones, ZBox bounds).

        Such rules put relevance on input elements in proportion to something other than the
        input itself, so they can only sit where relevance reaches the model input directly.
        """
        return any(t.inputs in ("ones", "low", "high") for t in self.terms)


def stabilize(d: Tensor, stabilizer: StabilizerLike) -> Tensor:
    """``d + eps * sign(d)`` with ``sign(0) = +1`` (or ``stabilizer(d)`` when callable)."""
    if callable(stabilizer):
        return stabilizer(d)
    # +eps for d >= 0, -eps for d < 0 (differs from sign(0) = +1 only at -0.0)
    return torch.copysign(d.new_tensor(float(stabilizer)), d).add_(d)


def safe_ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den != 0``, else 0."""
    nonzero = den != 0
    return torch.where(nonzero, num, 0.0) / torch.where(nonzero, den, 1.0)


class EpsilonShare:
    """The backward scale ``z / (z + eps sign z) = |z| / (|z| + eps)`` of the epsilon rule,
    kept as ``t = |z| + eps`` (two passes): the share ``g - eps g / t`` of a backward value
    ``g`` then costs one pass (:func:`apply_scale`), not one for the ratio and one for the
    product."""

    __slots__ = ("eps", "t")

    def __init__(self, z: Tensor, eps: float) -> None:
        self.t, self.eps = z.abs().add_(eps), eps

    def __call__(self, g: Tensor) -> Tensor:
        return torch.addcdiv(g, g, self.t, value=-self.eps)


def apply_scale(g: Tensor, scale: Tensor | EpsilonShare | float) -> Tensor:
    """``g`` times a backward scale (a tensor, an :class:`EpsilonShare` or a number)."""
    if isinstance(scale, EpsilonShare):
        return scale(g)
    return g if isinstance(scale, float) and scale == 1.0 else g * scale


def modify(param: Tensor, mod: ParamMod) -> Tensor:
    """Apply a parameter modifier (see the module docstring) to ``param``."""
    if mod == "ones":
        return torch.ones_like(param)
    if mod == "square":
        return param * param
    a, b = mod
    if b == 0.0:
        return param * a if a != 1.0 else param
    out = param.clamp(min=0) * b
    return out + param * a if a != 0.0 else out


def _check_stabilizer(value: StabilizerLike, name: str) -> StabilizerLike:
    if callable(value):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative float or a callable, got {value!r}")
    return float(value)


def _bias(mod: ParamMod, zero_bias: bool) -> ParamMod | None:
    return None if zero_bias else mod


def Epsilon(epsilon: StabilizerLike = 1e-6, zero_bias: bool = False) -> Rule:
    """LRP-epsilon: ``R_j = sum_k x_j w_jk / (z_k + eps sign z_k) R_k``; ``epsilon=0`` is LRP-0."""
    eps = _check_stabilizer(epsilon, "epsilon")
    term = Term("x", IDENTITY, _bias(IDENTITY, zero_bias))
    return Rule("Epsilon", "linear", (term,), stabilizer=eps)


def Gamma(gamma: float = 0.25, stabilizer: StabilizerLike = 1e-6,
          zero_bias: bool = False) -> Rule:
    """Generalised LRP-gamma: positive outputs favour positive contributions by ``gamma``.

    Outputs ``z_k > 0`` are explained with ``x+ (w + gamma w+) + x- (w + gamma w-)``, outputs
    ``z_k < 0`` with ``x+ (w + gamma w-) + x- (w + gamma w+)`` (the original rule for
    non-negative inputs, extended to signed ones as in Zennit); ``z_k = 0`` passes nothing.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be non-negative, got {gamma}")
    up: ParamMod = (1.0, gamma)              # w + gamma w+
    down: ParamMod = (1.0 + gamma, -gamma)   # w + gamma w-
    terms = (Term("pos", up, _bias(up, zero_bias)), Term("neg", down, None),
             Term("pos", down, _bias(down, zero_bias), group=1), Term("neg", up, None, group=1))
    return Rule("Gamma", "linear", terms, ("pos", "neg"), _check_stabilizer(stabilizer,
                                                                          "stabilizer"))


def AlphaBeta(alpha: float = 2.0, beta: float = 1.0,
              stabilizer: StabilizerLike = 1e-6, zero_bias: bool = False) -> Rule:
    """LRP-alpha-beta: positive contributions weighted by ``alpha``, negative by ``beta``.

    ``alpha - beta`` must be 1 so that the rule conserves relevance.
    """
    if alpha < 0 or beta < 0:
        raise ValueError(f"alpha and beta must be non-negative, got alpha={alpha}, beta={beta}")
    if abs(alpha - beta - 1.0) > 1e-12:
        raise ValueError(f"alpha - beta must equal 1, got alpha={alpha}, beta={beta}")
    terms = (Term("pos", POSITIVE, _bias(POSITIVE, zero_bias), coef=alpha),
             Term("neg", NEGATIVE, None, coef=alpha),
             Term("pos", NEGATIVE, _bias(NEGATIVE, zero_bias), coef=-beta, group=1),
             Term("neg", POSITIVE, None, coef=-beta, group=1))
    return Rule("AlphaBeta", "linear", terms, ("all", "all"),
                _check_stabilizer(stabilizer, "stabilizer"))


def ZPlus(stabilizer: StabilizerLike = 1e-6, zero_bias: bool = False) -> Rule:
    """LRP-z+: only positive contributions ``x+ w+ + x- w-`` (alpha=1, beta=0)."""
    terms = (Term("pos", POSITIVE, _bias(POSITIVE, zero_bias)), Term("neg", NEGATIVE, None))
    return Rule("ZPlus", "linear", terms, stabilizer=_check_stabilizer(stabilizer, "stabilizer"))


def ZBox(low: BoundLike, high: BoundLike, stabilizer: StabilizerLike = 1e-6,
         zero_bias: bool = False) -> Rule:
    """z^B for inputs bounded in ``[low, high]``: ``x w - low w+ - high w-``, normalised.

    ``low`` and ``high`` are scalars or tensors that broadcast to the input (e.g. ``(1, 3, 1, 1)``
    per channel). The layer must read the model input (possibly through reshapes).
    """
    for name, value in (("low", low), ("high", high)):
        if not isinstance(value, (int, float, Tensor)) or isinstance(value, bool):
            raise TypeError(f"ZBox {name} must be a float or a tensor, got {type(value).__name__}")
    terms = (Term("x", IDENTITY, _bias(IDENTITY, zero_bias)),
             Term("low", POSITIVE, _bias(POSITIVE, zero_bias), sign=-1.0, coef=-1.0),
             Term("high", NEGATIVE, _bias(NEGATIVE, zero_bias), sign=-1.0, coef=-1.0))
    return Rule("ZBox", "linear", terms, stabilizer=_check_stabilizer(stabilizer, "stabilizer"),
                low=low, high=high)


def Flat(stabilizer: StabilizerLike = 1e-6) -> Rule:
    """Flat: every weight set to one and the input ignored, so relevance spreads uniformly."""
    return Rule("Flat", "linear", (Term("ones", "ones", None),),
                stabilizer=_check_stabilizer(stabilizer, "stabilizer"))


def WSquare(stabilizer: StabilizerLike = 1e-6, zero_bias: bool = False) -> Rule:
    """w^2: relevance in proportion to the squared weights, input ignored."""
    return Rule("WSquare", "linear", (Term("ones", "square", _bias("square", zero_bias)),),
                stabilizer=_check_stabilizer(stabilizer, "stabilizer"))


def Pass() -> Rule:
    """Relevance passes through an element-wise layer unchanged (activations)."""
    return Rule("Pass", "pass")


def Norm(stabilizer: StabilizerLike = 1e-6) -> Rule:
    """Proportional split ``R_i = x_i (dy/dx_i) R / y`` (sums, average pooling, means)."""
    return Rule("Norm", "norm", stabilizer=_check_stabilizer(stabilizer, "stabilizer"))


def Gradient() -> Rule:
    """Relevance follows the plain gradient (max pooling, reshapes, concatenation, dropout)."""
    return Rule("Gradient", "gradient")



# ---- rules of layers without weights that mix activations ------------------------------------
def Uniform() -> Rule:
    """Products of two activations (AttnLRP): each factor of ``a * b`` gets half of the
    relevance, all of it when the other factor does not depend on the input."""
    return Rule("Uniform", "product")


def ConstantGate() -> Rule:
    """Products of two activations (CP-LRP): the gate of ``a * b`` is a constant, so the gated
    input gets all of the relevance (the gate: the factor that came out of a sigmoid-like
    activation, else the broadcast one)."""
    return Rule("ConstantGate", "product", gate=True)


def ConstantWeights() -> Rule:
    """CP-LRP on softmax: its output is a constant, no relevance reaches the scores."""
    return Rule("ConstantWeights", "constant")


def AttnSoftmax() -> Rule:
    """AttnLRP's softmax rule ``R_x = x ⊙ (R_s - s Σ R_s)``, which is gradient times input."""
    return Rule("AttnSoftmax", "gradient")


def Detach() -> Rule:
    """The layer's output is a constant: no relevance flows into its inputs (norms that
    normalise, masks, indices; :class:`~lumos.lrp.ops.elementwise.Detached`)."""
    return Rule("Detach", "constant")


def StdConstant() -> Rule:
    """AttnLRP's identity rule for normalisation: ``1 / std`` constant, the rest linear."""
    return Rule("StdConstant", "std-constant", stabilizer=0.0)


#: The product rule of the CNN composites (and of products no composite maps).
DEFAULT_PRODUCT = ConstantGate

__all__ = ["DEFAULT_PRODUCT", "AlphaBeta", "AttnSoftmax", "ConstantGate", "ConstantWeights",
           "Detach", "Epsilon", "Flat", "Gamma", "Gradient", "Norm", "Pass", "Rule",
           "StdConstant", "Term", "Uniform", "WSquare", "ZBox", "ZPlus", "modify", "stabilize"]
