"""Layer-wise Relevance Propagation, in four stages, each a subpackage or module:

1. :mod:`lumos.lrp.capture`: a private copy of the model captured as a graph on an example
   input, constants folded, checked to reproduce the model (:func:`prepare`);
2. :mod:`lumos.lrp.ops`: the op vocabulary every captured operation is rewritten into
   (layers, sums, products, attention, normalisations, constants);
3. :mod:`lumos.lrp.rules` and :mod:`lumos.lrp.composites`: the rules, as data, and which rule
   goes where;
4. :mod:`lumos.lrp.engine`: :class:`LRP` (also ``lumos.LRP``), relevance in one forward and one
   backward pass, with per-layer conservation.
"""

from lumos.lrp import composites, rules
from lumos.lrp.capture.prepare import prepare
from lumos.lrp.engine.lrp import LRP
from lumos.lrp.errors import LRPUnsupportedError

__all__ = ["LRP", "LRPUnsupportedError", "composites", "prepare", "rules"]
