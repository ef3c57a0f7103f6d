"""Dataset-wide analysis of stored explanations: SpRAy (spectral relevance analysis).

:func:`spray` clusters one class's heatmaps; :func:`analyse` runs it over a store directory
and writes ``DIR/analysis-<method>.h5`` in ViRelAy's layout (:mod:`lumos.analysis.layout`).
"""

from lumos.analysis.features import heatmap_features, sum_pool
from lumos.analysis.run import ClassAnalysis, analyse
from lumos.analysis.spray import SprayResult, SpraySettings, spray

__all__ = ["ClassAnalysis", "SprayResult", "SpraySettings", "analyse", "heatmap_features",
           "spray", "sum_pool"]
