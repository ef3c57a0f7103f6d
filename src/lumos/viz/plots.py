"""Plots for the report as PNG bytes; matplotlib is imported only when a plot is drawn.

The figures are small and drawn with the non-interactive Agg backend, so they work on a server
with no display and embed in the HTML report as data URIs.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_PALETTE = ("#c0392b", "#2471a3", "#1e8449", "#7d3c98", "#d68910", "#17a589", "#5d6d7e",
            "#a04000", "#2e4053", "#b03a2e")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'lumos[plots]'") from err
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _finish(fig: Any) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def curves(series: Mapping[str, Any], *, title: str = "", xlabel: str = "",
           ylabel: str = "", x: Sequence[float] | None = None,
           size: tuple[float, float] = (5.2, 3.4)) -> bytes:
    """Mean curve per method with a shaded band of one standard error.

    Parameters
    ----------
    series:
        ``{method: values}``; values shaped ``(steps,)`` or ``(samples, steps)``.
    x:
        Positions of the steps; default: the fraction of the input perturbed, ``0 .. 1``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=size)
    for k, (name, values) in enumerate(series.items()):
        v = np.atleast_2d(np.asarray(values, dtype=np.float64))
        xs = np.linspace(0.0, 1.0, v.shape[1]) if x is None else np.asarray(x, dtype=np.float64)
        mean = v.mean(axis=0)
        color = _PALETTE[k % len(_PALETTE)]
        ax.plot(xs, mean, label=name, color=color, linewidth=1.6)
        if v.shape[0] > 1:
            se = v.std(axis=0, ddof=1) / np.sqrt(v.shape[0])
            ax.fill_between(xs, mean - se, mean + se, color=color, alpha=0.15, linewidth=0)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    return _finish(fig)


def bars(values: Mapping[str, float], *, title: str = "", xlabel: str = "",
         log: bool = False, size: tuple[float, float] = (5.2, 2.8)) -> bytes:
    """Horizontal bars, one per name (runtimes, axiom errors), labelled with their values."""
    plt = _pyplot()
    names = list(values)
    heights = [float(values[n]) for n in names]
    fig, ax = plt.subplots(figsize=(size[0], max(size[1], 0.35 * len(names) + 0.9)))
    colors = [_PALETTE[k % len(_PALETTE)] for k in range(len(names))]
    ax.barh(names, heights, color=colors)
    ax.invert_yaxis()
    if log and all(h > 0 for h in heights):
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    for k, h in enumerate(heights):
        ax.text(h, k, f" {h:.3g}", va="center", fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    return _finish(fig)


def scatter_identity(x: Sequence[float], y: Sequence[float], *, title: str = "",
                     xlabel: str = "", ylabel: str = "",
                     size: tuple[float, float] = (3.6, 3.4)) -> bytes:
    """Points against the identity line: an axiom holds when they sit on it.

    Used for completeness (sum of IG attribution vs ``f(x) - f(x')``) and conservation (sum of
    LRP relevance vs ``f_t(x)``).
    """
    plt = _pyplot()
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    fig, ax = plt.subplots(figsize=size)
    both = np.concatenate([xs, ys]) if xs.size else np.zeros(1)
    lo, hi = float(both.min()), float(both.max())
    ax.plot([lo, hi], [lo, hi], color="#888888", linewidth=1, linestyle="--")
    ax.scatter(xs, ys, s=12, color=_PALETTE[1])
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return _finish(fig)
