"""Layer-wise Relevance Propagation, in four stages, each a subpackage or module:

1. :mod:`lumos.lrp.capture`: a private copy of the model captured as a graph on an example
   input, constants folded, checked to reproduce the model (:func:`prepare`);
2. :mod:`lumos.lrp.ops`: the op vocabulary every captured operation is rewritten into
   (layers, sums, products, attention, normalisations, constants);
3. :mod:`lumos.lrp.rules` and :mod:`lumos.lrp.composites`: the rules, as data, and which rule
   goes where (the product rules ``Uniform`` and ``ConstantGate`` included);
4. :mod:`lumos.lrp.engine`: :class:`LRP` (also ``lumos.LRP``), relevance in one forward and one
   backward pass, with per-layer conservation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lumos.lrp import composites, rules
from lumos.lrp.errors import LRPUnsupportedError

if TYPE_CHECKING:  # pragma: no cover
    from lumos.lrp.capture.prepare import prepare
    from lumos.lrp.engine.lrp import LRP

#: The public names of lumos.lrp (the API reference lists exactly these).
__all__ = ["LRP", "LRPUnsupportedError", "composites", "prepare", "rules"]


def __getattr__(name: str) -> Any:
    if name == "LRP":  # the engine imports torch.fx; only when asked for
        from lumos.lrp.engine.lrp import LRP

        return LRP
    if name == "prepare":
        from lumos.lrp.capture.prepare import prepare

        return prepare
    raise AttributeError(f"module 'lumos.lrp' has no attribute {name!r}")
