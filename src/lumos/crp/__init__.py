"""Concept Relevance Propagation (CRP) and relevance maximisation.

- :class:`CRP` (also ``lumos.CRP``): heatmaps conditioned on concepts (channels of a layer)
  and the relevance of every concept, on lumos's LRP engine (CNNs and ViTs).
- :mod:`lumos.crp.conditions`: concepts and conditions as users write them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from lumos.crp.attribution import CRP

#: The public names of lumos.crp (the API reference lists exactly these).
__all__ = ["CRP"]


def __getattr__(name: str) -> Any:
    if name == "CRP":  # the engine imports torch.fx; only when asked for
        from lumos.crp.attribution import CRP

        return CRP
    raise AttributeError(f"module 'lumos.crp' has no attribute {name!r}")
