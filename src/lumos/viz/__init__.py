"""Heatmaps, plots and the HTML report.

Heatmaps need only numpy and Pillow; :mod:`lumos.viz.plots` imports matplotlib when a plot is
drawn; :mod:`lumos.viz.report` writes one self-contained HTML file.
"""

from lumos.viz.image import data_uri, grid, heatmap, overlay, save_png, scale, to_image, to_map

__all__ = ["data_uri", "grid", "heatmap", "overlay", "save_png", "scale", "to_image", "to_map"]
