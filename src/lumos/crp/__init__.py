"""Concept Relevance Propagation (CRP) and relevance maximisation.

- :class:`CRP` (also ``lumos.CRP``): heatmaps conditioned on concepts (channels of a layer)
  and the relevance of every concept, on lumos's LRP engine (CNNs and ViTs).
- :func:`glocal`: each sample's most relevant concepts of a layer with their conditional
  heatmaps and reference samples (:class:`Glocal`).
- :mod:`lumos.crp.conditions`: concepts and conditions as users write them;
  :mod:`lumos.crp.analysis`: relevance maximisation over a store (``lumos concepts``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from lumos.crp.attribution import CRP
    from lumos.crp.references import Glocal, glocal

#: The public names of lumos.crp (the API reference lists exactly these).
__all__ = ["CRP", "Glocal", "glocal"]

_LAZY = {"CRP": "lumos.crp.attribution", "Glocal": "lumos.crp.references",
         "glocal": "lumos.crp.references"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:  # the engine imports torch.fx; only when asked for
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lumos.crp' has no attribute {name!r}")
