"""Heatmaps, plots and the HTML report."""
