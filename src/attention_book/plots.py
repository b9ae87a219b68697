"""The book's one figure style, and the attention plots every chapter uses.

Colours come from the Okabe–Ito palette and the ``viridis`` colormap, both readable with
the common forms of colour blindness. Figures are PNG at a modest resolution, so notebooks
stay light.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from cycler import cycler
from matplotlib.axes import Axes

from . import _validate

__all__ = [
    "CMAP",
    "PALETTE",
    "attention_heatmap",
    "image_overlay",
    "soft_lookup_widget",
    "temperature_widget",
    "use_style",
]

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

if TYPE_CHECKING:
    import ipywidgets

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


def soft_lookup_widget(
    keys: np.ndarray,
    colours: np.ndarray,
    labels: Sequence[str],
    *,
    angle: float = 40.0,
    temperature: float = 1.0,
) -> ipywidgets.VBox:
    """Build sliders that move a unit query around the circle and set the temperature.

    The widget shows, for the current query, the weight of every key as a bar in that key's
    colour and the looked-up colour (the weighted sum of ``colours``) as a swatch. It draws
    with HTML, so a saved notebook shows its last state even without a running kernel.

    Args:
        keys: ``(M, 2)`` keys in the plane.
        colours: ``(M, 3)`` RGB values in [0, 1], one per key.
        labels: ``M`` names of the keys.
        angle: initial direction of the query, in degrees.
        temperature: initial temperature, > 0.

    Returns:
        The widget; display it as the last expression of a cell.

    Introduced in :ref:`sec-soft-lookup`.
    """
    import ipywidgets as w

    keys, colours = np.asarray(keys, dtype=float), np.asarray(colours, dtype=float)
    if keys.ndim != 2 or keys.shape[1] != 2:
        raise ValueError(f"keys must be (M, 2), got shape {keys.shape}")
    if colours.shape != (len(keys), 3):
        raise ValueError(f"colours must be (M, 3) = {(len(keys), 3)}, got shape {colours.shape}")
    if len(labels) != len(keys):
        raise ValueError(f"labels must have {len(keys)} entries, got {len(labels)}")
    temperature = _validate.positive("temperature", temperature)

    style = {"description_width": "initial"}
    angle_slider = w.FloatSlider(
        value=angle, min=0, max=360, step=5, description="query angle (°)", style=style
    )
    temp_slider = w.FloatLogSlider(
        value=temperature,
        base=10,
        min=-1.5,
        max=1,
        step=0.05,
        description="temperature",
        style=style,
    )
    view = w.HTML()

    def hex_colour(rgb: np.ndarray) -> str:
        return "#" + "".join(f"{round(255 * float(c)):02x}" for c in np.clip(rgb, 0, 1))

    def update(_: object = None) -> None:
        theta = np.deg2rad(angle_slider.value)
        weights = _softmax(keys @ np.array([np.cos(theta), np.sin(theta)]) / temp_slider.value)
        rows = "".join(
            f"<div style='display:flex;align-items:center;gap:6px;height:20px'>"
            f"<span style='width:60px'>{label}</span>"
            f"<span style='width:{200 * wt:.0f}px;height:14px;background:{hex_colour(c)}'></span>"
            f"<span>{wt:.2f}</span></div>"
            for label, wt, c in zip(labels, weights, colours, strict=True)
        )
        swatch = hex_colour(weights @ colours)
        view.value = (
            f"<div style='display:flex;gap:24px;align-items:center'><div>{rows}</div>"
            f"<div style='text-align:center'><div style='width:70px;height:70px;"
            f"background:{swatch};border-radius:6px'></div>output<br>{swatch}</div></div>"
        )

    return _live([angle_slider, temp_slider], view, update)


def temperature_widget(
    positions: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    query: float | None = None,
    temperature: float = 1.0,
) -> ipywidgets.VBox:
    """Build sliders that move a query along a line of keys and set the softmax temperature.

    Key ``i`` sits at position ``x_i`` on a line. A query at position ``q`` scores it by
    ``-(q - x_i)**2``, and the weights are ``softmax(scores / temperature)``. The widget draws
    one bar per key at the key's position, marks the query, and reports the entropy of the
    weights next to its largest possible value, ``log M``. It draws with HTML, so a saved
    notebook shows its last state even without a running kernel.

    Args:
        positions: ``(M,)`` positions of the keys; at least two, finite, not all equal.
        query: initial position of the query, between the smallest and the largest position;
            ``None`` means halfway between them.
        temperature: initial temperature, > 0.

    Returns:
        The widget; display it as the last expression of a cell.

    Introduced in :ref:`sec-temperature`.
    """
    import ipywidgets as w

    x = _positions(positions)
    lo, hi = float(x.min()), float(x.max())
    if query is None:
        query = (lo + hi) / 2
    if isinstance(query, bool) or not isinstance(query, (int, float, np.integer, np.floating)):
        raise TypeError(f"query must be a number, got {type(query).__name__}")
    if not lo <= query <= hi:
        raise ValueError(f"query must lie in [{lo:g}, {hi:g}], the range of positions, got {query}")
    temperature = _validate.positive("temperature", temperature)

    style = {"description_width": "initial"}
    query_slider = w.FloatSlider(
        value=float(query),
        min=lo,
        max=hi,
        step=10 ** np.floor(np.log10((hi - lo) / 100)),  # a round step, about 1/100 of the range
        description="query position",
        style=style,
    )
    log_t = float(np.log10(temperature))
    temp_slider = w.FloatLogSlider(
        value=temperature,
        base=10,
        min=min(-2.0, np.floor(log_t)),
        max=max(2.0, np.ceil(log_t)),
        step=0.05,
        description="temperature",
        style=style,
    )
    view = w.HTML()
    width, height, pad = 420, 120, 12  # drawing area in pixels

    def left(position: float) -> float:
        return pad + (position - lo) / (hi - lo) * width

    def update(_: object = None) -> None:
        q, t = float(query_slider.value), float(temp_slider.value)
        weights = _softmax(-((q - x) ** 2) / t)
        entropy = float(-np.sum(weights * np.log(np.where(weights > 0, weights, 1.0))))
        bars = "".join(
            f"<div style='position:absolute;left:{left(xi) - 4:.1f}px;bottom:18px;width:8px;"
            f"height:{height * wt:.1f}px;background:{PALETTE[0]}'></div>"
            for xi, wt in zip(x, weights, strict=True)
        )
        marker = (
            f"<div style='position:absolute;left:{left(q) - 1:.1f}px;bottom:18px;width:2px;"
            f"height:{height + 6}px;background:{PALETTE[3]};opacity:0.7'></div>"
            f"<div style='position:absolute;left:{left(q) - 20:.1f}px;top:0;width:40px;"
            f"text-align:center;font-size:11px;color:{PALETTE[3]}'>query</div>"
        )
        axis = (
            f"<div style='position:absolute;left:{pad}px;bottom:16px;width:{width}px;"
            f"height:1px;background:#444'></div>"
            f"<div style='position:absolute;left:{pad}px;bottom:{height + 18}px;width:{width}px;"
            f"border-top:1px dotted #bbb;font-size:10px;color:#888'>weight 1</div>"
            f"<div style='position:absolute;left:{pad - 20}px;bottom:0;width:40px;"
            f"text-align:center;font-size:11px'>{lo:g}</div>"
            f"<div style='position:absolute;left:{pad + width - 20}px;bottom:0;width:40px;"
            f"text-align:center;font-size:11px'>{hi:g}</div>"
            f"<div style='position:absolute;left:{pad + width / 2 - 40}px;bottom:0;width:80px;"
            f"text-align:center;font-size:11px'>key position</div>"
        )
        label = (
            f"Bar chart of the weights of {len(x)} keys for a query at {q:.2f} and temperature "
            f"{t:.3g}; the largest weight is {weights.max():.2f}."
        )
        view.value = (
            f"<div role='img' aria-label='{label}' style='position:relative;"
            f"width:{width + 2 * pad}px;height:{height + 40}px'>{marker}{axis}{bars}</div>"
            f"<div style='font-size:13px'>entropy {entropy:.2f} nats of at most "
            f"log {len(x)} = {np.log(len(x)):.2f}; effective number of keys "
            f"e<sup>H</sup> = {np.exp(entropy):.1f}; largest weight {weights.max():.2f}</div>"
        )

    return _live([query_slider, temp_slider], view, update)


def _positions(positions: object) -> np.ndarray:
    """Return key positions as a float array ``(M,)``, or raise naming what is wrong."""
    if isinstance(positions, torch.Tensor):
        positions = positions.detach().cpu().numpy()
    if isinstance(positions, (str, bytes)) or not isinstance(positions, (np.ndarray, Sequence)):
        raise TypeError(
            f"positions must be a sequence, array or tensor of numbers, got "
            f"{type(positions).__name__}"
        )
    array = np.asarray(positions)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"positions must hold numbers, got dtype {array.dtype}")
    array = array.astype(float)
    if array.ndim != 1 or len(array) < 2:
        raise ValueError(f"positions must be (M,) with M >= 2, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("positions must be finite, got NaN or infinity")
    if array.min() == array.max():
        raise ValueError(
            f"positions must not all be equal, got {array.min():g} for all {len(array)}"
        )
    return array


def _softmax(scores: np.ndarray) -> np.ndarray:
    """The widgets' NumPy softmax (they draw without torch, on every slider move)."""
    weights = np.exp(scores - scores.max())
    result: np.ndarray = weights / weights.sum()
    return result


def _live(
    sliders: list[ipywidgets.FloatSlider | ipywidgets.FloatLogSlider],
    view: ipywidgets.HTML,
    update: Callable[[object], None],
) -> ipywidgets.VBox:
    """Redraw ``view`` whenever a slider moves, draw it once now, and lay the widget out."""
    import ipywidgets as w

    for slider in sliders:
        slider.observe(update, "value")
    update(None)
    return w.VBox([w.HBox(sliders), view])


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
