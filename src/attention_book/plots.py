"""The book's one figure style, and the attention plots every chapter uses.

Colours come from the Okabe–Ito palette and the ``viridis`` colormap, both readable with
the common forms of colour blindness. Figures are PNG at a modest resolution, so notebooks
stay light.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from cycler import cycler
from matplotlib.axes import Axes

__all__ = ["CMAP", "PALETTE", "attention_heatmap", "use_style"]

#: Colormap for weights and other quantities in [0, 1]; perceptually uniform.
CMAP = "viridis"

#: Okabe & Ito's colour-blind-safe palette, in the order lines are drawn.
PALETTE = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # green
    "#D55E00",  # vermillion
    "#CC79A7",  # purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)

_STYLE: dict[str, Any] = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 90,
    "savefig.dpi": 90,
    "figure.constrained_layout.use": True,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.prop_cycle": cycler(color=PALETTE),
    "image.cmap": CMAP,
    "legend.frameon": False,
    "svg.hashsalt": "paying-attention",  # stable ids, should anyone save an SVG
}


def use_style() -> None:
    """Apply the book's figure style to every figure drawn after this call.

    In a notebook it also asks the inline backend for PNG only (no SVG or PDF copies).

    Introduced in :ref:`sec-soft-lookup`.
    """
    mpl.rcParams.update(_STYLE)  # type: ignore[arg-type]
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with Jupyter
        return
    shell = get_ipython()
    if shell is not None and "InlineBackend" in shell.config:
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")


def attention_heatmap(
    weights: torch.Tensor | np.ndarray,
    *,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    annotate: bool = False,
    colorbar: bool = True,
) -> Axes:
    """Draw a matrix of attention weights: one row per query, one column per key.

    Args:
        weights: ``(N, M)`` weights, usually in [0, 1] with rows summing to one.
        query_labels: ``N`` row labels, or ``None`` for indices.
        key_labels: ``M`` column labels, or ``None`` for indices.
        ax: the axes to draw on; a new figure when ``None``.
        title: the axes title.
        annotate: write each weight in its cell (for small matrices).
        colorbar: add a colour bar.

    Returns:
        The axes drawn on.

    Introduced in :ref:`sec-soft-lookup`.
    """
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().numpy()
    if not isinstance(weights, np.ndarray):
        raise TypeError(f"weights must be a tensor or an array, got {type(weights).__name__}")
    if weights.ndim != 2:
        raise ValueError(f"weights must be (N, M), got shape {weights.shape}")
    n, m = weights.shape
    for name, labels, size in (("query_labels", query_labels, n), ("key_labels", key_labels, m)):
        if labels is not None and len(labels) != size:
            raise ValueError(
                f"{name} must have {size} entries for weights {weights.shape}, got {len(labels)}"
            )
    if n == 0 or m == 0:
        raise ValueError(f"weights must have at least one row and column, got {weights.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.2 + 0.45 * m, 0.8 + 0.4 * n))
    image = ax.imshow(
        weights, cmap=CMAP, vmin=0.0, vmax=max(1.0, float(weights.max())), aspect="auto"
    )
    ax.set_xticks(range(m), [str(s) for s in (range(m) if key_labels is None else key_labels)])
    ax.set_yticks(range(n), [str(s) for s in (range(n) if query_labels is None else query_labels)])
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)
    if annotate:
        for i in range(n):
            for j in range(m):
                value = weights[i, j]
                ax.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if value > 0.6 else "white",
                )
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.05, pad=0.02, label="weight")
    return ax
