"""Gradient-based attribution: Integrated Gradients and the simple gradient family.

- :class:`IntegratedGradients`: Captum's ``attribute`` signature, plus ``explain`` that refines
  each sample until the estimated error of its map and its completeness gap are within a
  tolerance;
- :class:`Gradient`, :class:`InputXGradient`, :class:`SmoothGrad` on the same interface;
- :mod:`lumos.attribution.baselines`: the baselines IG integrates from (a number, ``"zero"``,
  ``"blur"``, ``"uniform"``, expected-gradients style samples);
- :mod:`lumos.attribution.quadrature`: the quadrature rules (``method=``) as nodes and weights.
"""

from lumos.attribution import baselines, quadrature
from lumos.attribution.gradient import Gradient, InputXGradient, SmoothGrad
from lumos.attribution.integrated import ConvergenceWarning, IntegratedGradients

__all__ = ["ConvergenceWarning", "Gradient", "InputXGradient", "IntegratedGradients",
           "SmoothGrad", "baselines", "quadrature"]
