"""The book's first interactive figures: a query turned around a circle, and moved along a line.

Both are :func:`attention_book.plots.explorer` figures: every slider position is computed
when the page runs and drawn in the browser, so they work on the published site, in Jupyter
and in Colab with no kernel, and print as a picture of their first state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from . import _validate
from ._explorer import Bars, Explorer, explorer
from ._palette import PALETTE

__all__ = ["soft_lookup_widget", "temperature_widget"]


def _temperatures(temperature: float) -> tuple[list[float], int]:
    """The slider's temperatures, 10^-2 to 10^2 (widened to hold ``temperature``), four steps a
    decade, and the index of the one nearest ``temperature``."""
    log_t = float(np.log10(temperature))
    grid = np.arange(min(-2.0, np.floor(log_t)), max(2.0, np.ceil(log_t)) + 1e-9, 0.25)
    values = [float(f"{10**g:.3g}") for g in grid]
    return values, int(np.argmin(np.abs(grid - log_t)))


def soft_lookup_widget(
    keys: np.ndarray,
    colours: np.ndarray,
    labels: Sequence[str],
    *,
    angle: float = 40.0,
    temperature: float = 1.0,
) -> Explorer:
    """Build sliders that move a unit query around the circle and set the temperature.

    The figure shows, for the current query, the weight of every key as a bar in that key's
    colour and the looked-up colour (the weighted sum of ``colours``) as a swatch. Every
    position of the sliders (query angles 10° apart, temperatures four to a decade) is
    computed now, so the figure works with no kernel.

    Args:
        keys: ``(M, 2)`` keys in the plane.
        colours: ``(M, 3)`` RGB values in [0, 1], one per key.
        labels: ``M`` names of the keys.
        angle: initial direction of the query, in degrees (the nearest multiple of 10).
        temperature: initial temperature, > 0 (the nearest slider step).

    Returns:
        The figure; display it as the last expression of a cell.

    Introduced in :ref:`sec-soft-lookup`.
    """
    keys, colours = np.asarray(keys, dtype=float), np.asarray(colours, dtype=float)
    if keys.ndim != 2 or keys.shape[1] != 2:
        raise ValueError(f"keys must be (M, 2), got shape {keys.shape}")
    if colours.shape != (len(keys), 3):
        raise ValueError(f"colours must be (M, 3) = {(len(keys), 3)}, got shape {colours.shape}")
    if len(labels) != len(keys):
        raise ValueError(f"labels must have {len(keys)} entries, got {len(labels)}")
    temperature = _validate.positive("temperature", temperature)
    angles = list(range(0, 360, 10))
    temps, t0 = _temperatures(temperature)
    palette = [_hex(c) for c in colours]

    def frame(angle: int, temperature: int) -> tuple[list[Bars], str]:
        theta = np.deg2rad(angles[angle])
        weights = _softmax(keys @ np.array([np.cos(theta), np.sin(theta)]) / temps[temperature])
        out = _hex(weights @ colours)
        bars = Bars(weights, list(labels), "weight of each key", vmax=1.0, colours=palette)
        swatch = Bars([1.0], ["output"], "looked-up colour", text=[out], colours=[out])
        return [bars, swatch], f"query at {angles[angle]}°, temperature {temps[temperature]:g}"

    return explorer(
        {"angle": [f"{a}°" for a in angles], "temperature": [f"{t:g}" for t in temps]},
        frame,
        alt=(
            f"Bars of the weights of {len(keys)} keys for a unit query and the colour they look "
            "up; sliders turn the query and set the temperature."
        ),
        hint="Move the sliders (or focus one and use the arrow keys).",
        sliders=["angle", "temperature"],
        initial={"angle": round(angle / 10) % 36, "temperature": t0},
        size=(6.0, 0.35 * len(keys) + 1.2),
    )


def temperature_widget(
    positions: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    query: float | None = None,
    temperature: float = 1.0,
) -> Explorer:
    """Build sliders that move a query along a line of keys and set the softmax temperature.

    Key ``i`` sits at position ``x_i`` on a line. A query at position ``q`` scores it by
    ``-(q - x_i)**2``, and the weights are ``softmax(scores / temperature)``. The figure draws
    one bar per key and reports the entropy of the weights next to its largest possible value,
    ``log M``. Every slider position (41 query positions across the keys' range,
    temperatures four to a decade) is computed now, so it works with no kernel.

    Args:
        positions: ``(M,)`` positions of the keys; at least two, finite, not all equal.
        query: initial position of the query, between the smallest and the largest position;
            ``None`` means halfway between them (the nearest slider step is used).
        temperature: initial temperature, > 0 (the nearest slider step).

    Returns:
        The figure; display it as the last expression of a cell.

    Introduced in :ref:`sec-temperature`.
    """
    x = _positions(positions)
    lo, hi = float(x.min()), float(x.max())
    if query is None:
        query = (lo + hi) / 2
    if isinstance(query, bool) or not isinstance(query, (int, float, np.integer, np.floating)):
        raise TypeError(f"query must be a number, got {type(query).__name__}")
    if not lo <= query <= hi:
        raise ValueError(f"query must lie in [{lo:g}, {hi:g}], the range of positions, got {query}")
    temperature = _validate.positive("temperature", temperature)
    queries = np.linspace(lo, hi, 41)
    temps, t0 = _temperatures(temperature)
    names = [f"key at {xi:g}" for xi in x]

    def frame(query: int, temperature: int) -> tuple[list[Bars], str]:
        q, t = float(queries[query]), temps[temperature]
        weights = _softmax(-((q - x) ** 2) / t)
        entropy = float(-np.sum(weights * np.log(np.where(weights > 0, weights, 1.0))))
        caption = (
            f"entropy {entropy:.2f} of at most {np.log(len(x)):.2f} nats "
            f"(e^H = {np.exp(entropy):.1f} keys); largest weight {weights.max():.2f}"
        )
        return [
            Bars(weights, names, "weight of each key", vmax=1.0, colours=[PALETTE[0]] * len(x))
        ], caption

    return explorer(
        {"query": [f"{q:.2f}" for q in queries], "temperature": [f"{t:g}" for t in temps]},
        frame,
        alt=(
            f"Bars of the softmax weights of {len(x)} keys on a line for a query between "
            f"{lo:g} and {hi:g}; sliders move the query and set the temperature."
        ),
        hint="Move the sliders (or focus one and use the arrow keys).",
        sliders=["query", "temperature"],
        initial={"query": int(np.argmin(np.abs(queries - query))), "temperature": t0},
        size=(6.0, 0.3 * len(x) + 1.2),
    )


def _hex(rgb: np.ndarray) -> str:
    return "#" + "".join(f"{round(255 * float(c)):02x}" for c in np.clip(rgb, 0, 1))


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
    """The widgets' NumPy softmax, run once for every slider position they precompute."""
    weights = np.exp(scores - scores.max())
    result: np.ndarray = weights / weights.sum()
    return result
