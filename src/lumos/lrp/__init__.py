"""Layer-wise Relevance Propagation: rules, composites, model preparation and the engine.

- :mod:`lumos.lrp.rules`: each rule as data (Epsilon, Gamma, AlphaBeta, ZPlus, ZBox, Flat,
  WSquare, Pass, Norm, Gradient);
- :mod:`lumos.lrp.products`: element-wise products of activations (gates, squeeze-excitation)
  and their rules (Uniform, ConstantGate);
- :mod:`lumos.lrp.composites`: which rule where (EpsilonPlus, EpsilonGammaBox,
  EpsilonAlpha2Beta1, EpsilonPlusFlat, EpsilonAlpha2Beta1Flat, Epsilon, LayerMap, NameMap);
- :mod:`lumos.lrp.prepare`: a torch.fx copy of the model with BatchNorm folded and functional
  operations turned into modules (:mod:`~lumos.lrp.canonize` and its handlers,
  :mod:`~lumos.lrp.arith`, :mod:`~lumos.lrp.leaves`, :mod:`~lumos.lrp.fold`);
- :mod:`lumos.lrp.engine`: :class:`~lumos.lrp.engine.LRP`, relevance in one forward and one
  backward pass (also exported as ``lumos.LRP``), one step per module call
  (:mod:`~lumos.lrp.steps`, :mod:`~lumos.lrp.propagate`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lumos.lrp import composites, products, rules

if TYPE_CHECKING:  # pragma: no cover
    from lumos.lrp.engine import LRP

#: The public names of lumos.lrp (the API reference lists exactly these).
__all__ = ["LRP", "composites", "products", "rules"]


def __getattr__(name: str) -> Any:
    if name == "LRP":  # the engine imports torch.fx; only when asked for
        from lumos.lrp.engine import LRP

        return LRP
    raise AttributeError(f"module 'lumos.lrp' has no attribute {name!r}")
