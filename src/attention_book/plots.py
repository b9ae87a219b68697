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

from . import _palette
from ._explorer import Bars, Explorer, Lines, Matrix, Patches, explorer
from ._widgets import soft_lookup_widget, temperature_widget

__all__ = [
    "CMAP",
    "PALETTE",
    "Bars",
    "Explorer",
    "Lines",
    "Matrix",
    "Patches",
    "attention_heatmap",
    "explorer",
    "image_overlay",
    "soft_lookup_widget",
    "temperature_widget",
    "use_style",
]

#: Colormap for weights and other quantities in [0, 1]; perceptually uniform.
CMAP = _palette.CMAP

#: Okabe & Ito's colour-blind-safe palette, in the order lines are drawn.
PALETTE = _palette.PALETTE

# the widgets live in their own module; the API page lists them here, with the plots
for _widget in (
    soft_lookup_widget,
    temperature_widget,
    explorer,
    Bars,
    Explorer,
    Lines,
    Matrix,
    Patches,
):
    _widget.__module__ = __name__

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
        _, ax = plt.subplots(figsize=(2.0 + 0.6 * m, 1.0 + 0.35 * n))
    image = ax.imshow(
        weights, cmap=CMAP, vmin=0.0, vmax=max(1.0, float(weights.max())), aspect="auto"
    )
    ax.set_xticks(range(m), [str(s) for s in (range(m) if key_labels is None else key_labels)])
    ax.set_yticks(range(n), [str(s) for s in (range(n) if query_labels is None else query_labels)])
    if key_labels is not None and max(len(str(s)) for s in key_labels) > 3:
        ax.tick_params(axis="x", labelrotation=35)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
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


def image_overlay(
    image: torch.Tensor | np.ndarray,
    weights: torch.Tensor | np.ndarray | None = None,
    *,
    boxes: Sequence[Sequence[float]] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    alpha: float = 0.6,
    vmax: float | None = None,
) -> Axes:
    """Draw an image with a map of attention weights laid over it, and optional boxes.

    The map covers the whole image, each of its cells stretched over the pixels it stands
    for (a ``(4, 4)`` map on a 32-pixel image: 8 x 8 pixels a cell), coloured from 0 to its
    own maximum, or to ``vmax``.

    Args:
        image: ``(3, H, W)`` (PyTorch's layout) or ``(H, W, 3)`` RGB in ``[0, 1]``, or
            ``(H, W)`` grey.
        weights: ``(h, w)`` non-negative weights, or ``None`` for the image alone.
        boxes: rectangles ``(x0, y0, x1, y1)`` in pixels, drawn as outlines.
        ax: the axes to draw on; a new figure when ``None``.
        title: the axes title.
        alpha: opacity of the map, in ``[0, 1]``.
        vmax: the weight shown in the brightest colour; ``None`` means the map's maximum
            (to compare maps, e.g. gates in ``(0, 1)``, give them one ``vmax``).

    Returns:
        The axes drawn on.

    Introduced in :ref:`sec-vit-attention`.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3):
            image = image.transpose(1, 2, 0)
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ValueError(
            f"image must be (3, H, W), (H, W, 3) or (H, W), got {getattr(image, 'shape', image)}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    height, width = image.shape[:2]
    if ax is None:
        _, ax = plt.subplots(figsize=(2.2, 2.2))
    ax.imshow(image.squeeze(), cmap="gray", vmin=0.0, vmax=1.0, extent=(0, width, height, 0))
    if weights is not None:
        if isinstance(weights, torch.Tensor):
            weights = weights.detach().cpu().numpy()
        if not isinstance(weights, np.ndarray) or weights.ndim != 2:
            raise ValueError(f"weights must be (h, w), got {getattr(weights, 'shape', weights)}")
        top = (float(weights.max()) or 1.0) if vmax is None else vmax
        ax.imshow(
            weights, cmap=CMAP, vmin=0.0, vmax=top, alpha=alpha,
            extent=(0, width, height, 0), interpolation="nearest",
        )  # fmt: skip
    for box in boxes or []:
        x0, y0, x1, y1 = (float(v) for v in box)
        ax.add_patch(
            mpl.patches.Rectangle(
                (x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=PALETTE[1], linewidth=1.5
            )
        )
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax
