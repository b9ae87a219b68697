"""The book's interactive figures: sliders that redraw a picture of the weights.

Each widget draws with HTML, so a saved notebook shows its last state without a kernel. It
also carries a static PNG of the same state in its output (``image/png`` beside the widget
view), which the printed book shows in its place: the site picks the live widget, the PDF
the picture.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib.figure import Figure

from . import _validate
from ._palette import PALETTE

if TYPE_CHECKING:
    import ipywidgets

__all__ = ["soft_lookup_widget", "temperature_widget"]


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

    def draw(figure: Figure) -> None:
        theta = np.deg2rad(angle_slider.value)
        weights = _softmax(keys @ np.array([np.cos(theta), np.sin(theta)]) / temp_slider.value)
        bars, swatch = figure.subplots(1, 2, width_ratios=[4, 1])
        rows = np.arange(len(keys))
        bars.barh(rows, weights, color=np.clip(colours, 0, 1))
        for row, wt in zip(rows, weights, strict=True):
            bars.text(wt + 0.02, row, f"{wt:.2f}", va="center", fontsize=8)
        bars.set(yticks=rows, yticklabels=list(labels), xlim=(0, 1.15), xlabel="weight")
        bars.invert_yaxis()
        bars.set_title(
            f"query at {angle_slider.value:g}°, temperature {temp_slider.value:.3g}", fontsize=9
        )
        swatch.set_facecolor(np.clip(weights @ colours, 0, 1))
        swatch.set(xticks=[], yticks=[], title="output")

    return _live([angle_slider, temp_slider], view, update, draw, (5.0, 0.35 * len(keys) + 1))


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

    def draw(figure: Figure) -> None:
        q, t = float(query_slider.value), float(temp_slider.value)
        weights = _softmax(-((q - x) ** 2) / t)
        entropy = float(-np.sum(weights * np.log(np.where(weights > 0, weights, 1.0))))
        ax = figure.subplots()
        ax.bar(x, weights, width=(hi - lo) / 80, color=PALETTE[0])
        ax.axvline(q, color=PALETTE[3], linestyle="--", linewidth=1, label="query")
        ax.set(xlabel="key position", ylabel="weight", ylim=(0, 1.05))
        ax.legend(loc="upper right", fontsize=8, frameon=False)
        ax.set_title(
            f"temperature {t:.3g}: entropy {entropy:.2f} nats of at most "
            f"log {len(x)} = {np.log(len(x)):.2f}",
            fontsize=9,
        )

    return _live([query_slider, temp_slider], view, update, draw, (5.0, 2.2))


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
    draw: Callable[[Figure], None],
    size: tuple[float, float],
) -> ipywidgets.VBox:
    """Redraw ``view`` whenever a slider moves, draw it once now, and lay the widget out.

    ``draw`` paints the current state on a matplotlib figure of ``size`` inches: the static
    image that a printed page shows instead of the live widget.
    """
    import ipywidgets as w

    class InteractiveFigure(w.VBox):  # type: ignore[misc]
        def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
            bundle: dict[str, Any] = super()._repr_mimebundle_(**kwargs)
            figure = Figure(figsize=size, dpi=90, layout="constrained")
            draw(figure)
            png = io.BytesIO()
            figure.savefig(png, format="png")
            bundle["image/png"] = base64.b64encode(png.getvalue()).decode("ascii")
            return bundle

    for slider in sliders:
        slider.observe(update, "value")
    update(None)
    return InteractiveFigure([w.HBox(sliders), view])
