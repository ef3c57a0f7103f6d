"""Propagation: the LRP attributor and the modified-gradient machinery behind it.

:class:`~lumos.lrp.engine.lrp.LRP` runs a prepared program (:mod:`lumos.lrp.capture`) whose
module calls are steps with the composite's rules (:mod:`lumos.lrp.engine.steps`,
:mod:`lumos.lrp.engine.propagate`), in one forward and one backward pass.
"""

from lumos.lrp.engine.lrp import LRP, PROGRAMS_KEPT

__all__ = ["LRP", "PROGRAMS_KEPT"]
