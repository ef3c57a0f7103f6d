"""Propagation: the LRP attributor and the modified-gradient machinery behind it.

- :mod:`~lumos.lrp.engine.lrp`: :class:`LRP` (also ``lumos.LRP``);
- :mod:`~lumos.lrp.engine.programs`, :mod:`~lumos.lrp.engine.program`: prepared programs per
  input size, each a graph with one step per module call;
- :mod:`~lumos.lrp.engine.dispatch`, :mod:`~lumos.lrp.engine.steps`: which step runs a layer
  under its rule;
- :mod:`~lumos.lrp.engine.rulelayer`, :mod:`~lumos.lrp.engine.terms`,
  :mod:`~lumos.lrp.engine.signed`, :mod:`~lumos.lrp.engine.linear`: weighted layers under
  their rules; :mod:`~lumos.lrp.engine.route`, :mod:`~lumos.lrp.engine.products`,
  :mod:`~lumos.lrp.engine.attention`, :mod:`~lumos.lrp.engine.norms`: the other layers;
- :mod:`~lumos.lrp.engine.sinks`, :mod:`~lumos.lrp.engine.report`: constants that take
  relevance, and the conservation report;
- :mod:`~lumos.lrp.engine.concepts`: hooks that read and change the relevance at module
  outputs during the backward pass (the seam for concept-conditional LRP).
"""

from lumos.lrp.engine.lrp import LRP, PROGRAMS_KEPT

__all__ = ["LRP", "PROGRAMS_KEPT"]
