"""Interactive figures that work with no kernel: data computed here, drawn by inlined JavaScript.

A figure has controls (drop-down lists or sliders) and, for every combination of their
choices, a frame: a few panels and a caption. Python computes every frame when the page runs
and writes them, rounded to three significant digits, into one HTML output together with
``_static/explorer.js``. The browser draws the panels and swaps frames as the controls move,
on the published site, in Jupyter and in Colab alike, with nothing fetched. The same output
carries a PNG of the first frame: the printed book shows it, and a reader without JavaScript
sees it with its alt text.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = ["Bars", "Explorer", "Lines", "Matrix", "Patches", "explorer"]

Array = np.ndarray | torch.Tensor | Sequence[Sequence[float]]


def _array(name: str, value: object, ndim: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().float().cpu().numpy()
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be an array of numbers, got {type(value).__name__}"
        ) from error
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    return array


def _labels(name: str, labels: Sequence[str] | None, size: int) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str) or len(labels) != size:
        raise ValueError(f"{name} must hold {size} labels, got {labels!r}")
    return [str(label) for label in labels]


def _pack(array: np.ndarray) -> dict[str, Any]:
    """Keep three significant digits: integers and one scale, far smaller than float text.

    A NaN or infinite entry becomes ``null`` (drawn grey: e.g. a tile not computed yet).
    """
    finite = np.isfinite(array)
    top = float(np.abs(array[finite]).max()) if finite.any() else 1.0
    scale = 10.0 ** (2 - int(np.floor(np.log10(top)))) if top > 0 else 1.0
    ints = np.rint(np.where(finite, array, 0.0) * scale).astype(int).ravel().tolist()
    q = [i if ok else None for i, ok in zip(ints, finite.ravel().tolist(), strict=True)]
    return {"shape": list(array.shape), "scale": scale, "q": q}


@dataclass
class Matrix:
    """A heatmap with row and column labels; hovering a row shows its strongest columns.

    Args:
        values: ``(R, C)`` numbers, e.g. attention weights (a query per row).
        title: shown above the panel.
        rows: ``R`` labels, or ``None``.
        cols: ``C`` labels, or ``None``.
        vmin: value at the bottom of the colormap; ``None`` takes the smallest.
        vmax: value at the top; ``None`` takes the largest.

    Introduced in :ref:`sec-multi-head`.
    """

    values: Array
    title: str = ""
    rows: Sequence[str] | None = None
    cols: Sequence[str] | None = None
    vmin: float | None = 0.0
    vmax: float | None = None

    def data(self) -> dict[str, Any]:
        values = _array("values", self.values, 2)
        return {
            "kind": "matrix",
            "title": self.title,
            "values": _pack(values),
            "rows": _labels("rows", self.rows, values.shape[0]),
            "cols": _labels("cols", self.cols, values.shape[1]),
            "vmin": self.vmin,
            "vmax": self.vmax,
        }

    def draw(self, ax: Any) -> None:
        values = _array("values", self.values, 2)
        ax.imshow(values, vmin=self.vmin, vmax=self.vmax, aspect="auto")
        if self.rows is not None:
            ax.set_yticks(range(values.shape[0]), list(self.rows), fontsize=7)
        if self.cols is not None:
            ax.set_xticks(range(values.shape[1]), list(self.cols), fontsize=7, rotation=60)
        ax.set_title(self.title, fontsize=9)


@dataclass
class Lines:
    """Tokens attending to tokens as lines whose opacity is the weight (a head view).

    Args:
        values: ``(N, N)`` weights in [0, 1], a query per row.
        tokens: ``N`` labels.
        title: shown above the panel.

    Introduced in :ref:`sec-pretrained`.
    """

    values: Array
    tokens: Sequence[str]
    title: str = ""

    def data(self) -> dict[str, Any]:
        values = _array("values", self.values, 2)
        if values.shape[0] != values.shape[1]:
            raise ValueError(f"values must be square (N, N), got shape {values.shape}")
        return {
            "kind": "lines",
            "title": self.title,
            "values": _pack(np.clip(values, 0, 1)),
            "tokens": _labels("tokens", self.tokens, values.shape[0]),
        }

    def draw(self, ax: Any) -> None:
        values, n = np.clip(_array("values", self.values, 2), 0, 1), len(self.tokens)
        for i in range(n):
            ax.text(0, -i, self.tokens[i], ha="right", va="center", fontsize=7)
            ax.text(1, -i, self.tokens[i], ha="left", va="center", fontsize=7)
            for j in range(n):
                if values[i, j] >= 0.02:
                    ax.plot([0.05, 0.95], [-i, -j], color="#0072B2", alpha=float(values[i, j]))
        ax.set(xlim=(-0.6, 1.6), ylim=(-n, 1), xticks=[], yticks=[])
        ax.axis("off")
        ax.set_title(self.title, fontsize=9)


@dataclass
class Patches:
    """An image cut into a grid of patches; hovering a patch shows where it looks.

    Args:
        image: ``(H, W)`` grey levels in [0, 1].
        grid: ``(rows, cols)`` of patches; they must divide ``H`` and ``W``.
        values: ``(P, P)`` weights between the ``P = rows * cols`` patches, a query per row.
        title: shown above the panel.

    Introduced in :ref:`sec-vit-attention`.
    """

    image: Array
    grid: tuple[int, int]
    values: Array
    title: str = ""

    def data(self) -> dict[str, Any]:
        image, values = _array("image", self.image, 2), _array("values", self.values, 2)
        rows, cols = self.grid
        if image.shape[0] % rows or image.shape[1] % cols:
            raise ValueError(f"grid {self.grid} must divide the image's shape {image.shape}")
        if values.shape != (rows * cols, rows * cols):
            raise ValueError(
                f"values must be (P, P) = {(rows * cols, rows * cols)} for grid {self.grid}, "
                f"got shape {values.shape}"
            )
        return {
            "kind": "patches",
            "title": self.title,
            "image": _pack(np.clip(image, 0, 1)),
            "grid": [rows, cols],
            "values": _pack(values),
        }

    def draw(self, ax: Any) -> None:
        image, values = _array("image", self.image, 2), _array("values", self.values, 2)
        rows, cols = self.grid
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        centre = (rows * cols) // 2  # the middle patch, as an example
        overlay = values[centre].reshape(rows, cols)
        ax.imshow(
            np.kron(
                overlay / max(overlay.max(), 1e-12),
                np.ones((image.shape[0] // rows, image.shape[1] // cols)),
            ),
            cmap="Oranges",
            alpha=0.6,
        )
        ax.set(xticks=[], yticks=[])
        ax.set_title(f"{self.title} (patch {centre})", fontsize=9)


@dataclass
class Bars:
    """Horizontal bars with their values written beside them.

    Args:
        values: ``M`` numbers, >= 0.
        labels: ``M`` labels.
        title: shown above the panel.
        text: ``M`` strings to write instead of the numbers (e.g. "1.2 GiB"), or ``None``.
        vmax: the value of a full bar; ``None`` takes the largest (set it to compare frames).
        colours: ``M`` CSS colours, or ``None`` for the book's blue.

    Introduced in :ref:`sec-local-global`.
    """

    values: Sequence[float] | np.ndarray
    labels: Sequence[str]
    title: str = ""
    text: Sequence[str] | None = None
    vmax: float | None = None
    colours: Sequence[str] | None = None

    def data(self) -> dict[str, Any]:
        values = _array("values", self.values, 1)
        if (values < 0).any():
            raise ValueError(f"values must be >= 0, got {values.min():g}")
        return {
            "kind": "bars",
            "title": self.title,
            "bars": _pack(values[None]),
            "labels": _labels("labels", self.labels, len(values)),
            "text": _labels("text", self.text, len(values)),
            "vmax": self.vmax,
            "colours": _labels("colours", self.colours, len(values)),
        }

    def draw(self, ax: Any) -> None:
        values = _array("values", self.values, 1)
        ax.barh(range(len(values)), values, color=list(self.colours) if self.colours else "#0072B2")
        ax.set_yticks(range(len(values)), list(self.labels), fontsize=7)
        ax.invert_yaxis()
        for i, v in enumerate(values):
            ax.text(
                v, i, " " + (self.text[i] if self.text else f"{v:.3g}"), va="center", fontsize=7
            )
        if self.vmax:
            ax.set_xlim(0, self.vmax * 1.25)
        ax.set_title(self.title, fontsize=9)


Panel = Matrix | Lines | Patches | Bars

_POOLED = ("values", "image", "bars", "rows", "cols", "tokens", "labels", "text", "colours")


def _intern(data: dict[str, Any], pool: list[Any], index: dict[str, int]) -> dict[str, Any]:
    """Store each array and label list of a panel once in ``pool``; refer to it as ``{"$": i}``.

    Frames repeat a lot (the same tokens under every head, a rollout under every head slider
    position, a head view beside its heatmap): the figure keeps one copy of each.
    """
    out = dict(data)
    for key in _POOLED:
        if out.get(key) is None:
            continue
        text = json.dumps(out[key], separators=(",", ":"))
        if text not in index:
            index[text] = len(pool)
            pool.append(out[key])
        out[key] = {"$": index[text]}
    return out


@dataclass
class Explorer:
    """An interactive figure: controls, and the frames (panels and caption) they choose.

    Build it with :func:`explorer`. Displayed in a notebook, it is an HTML output with its
    data and its script inlined, beside a PNG of its first frame for print.

    Introduced in :ref:`sec-multi-head`.
    """

    controls: list[dict[str, Any]]
    frames: dict[str, dict[str, Any]]
    alt: str
    hint: str
    still: list[Panel] = field(repr=False)
    size: tuple[float, float] = (6.4, 3.0)
    base: list[dict[str, Any]] = field(default_factory=list, repr=False)
    pool: list[Any] = field(default_factory=list, repr=False)

    def to_json(self) -> str:
        """The figure's data, as the script reads it."""
        data = {
            "controls": self.controls,
            "pool": self.pool,
            "base": self.base,
            "frames": self.frames,
            "alt": self.alt,
            "hint": self.hint,
        }
        return json.dumps(data, separators=(",", ":"))

    def png(self) -> bytes:
        """A picture of the first frame, for print and for readers without JavaScript."""
        figure = Figure(figsize=self.size, dpi=90, layout="constrained")
        axes = figure.subplots(1, len(self.still), squeeze=False)[0]
        for panel, ax in zip(self.still, axes, strict=True):
            panel.draw(ax)
        out = io.BytesIO()
        figure.savefig(out, format="png", metadata={"Software": None})
        return out.getvalue()

    def html(self, png: bytes | None = None) -> str:
        """The HTML output: the picture, the data and the script, with nothing to fetch."""
        data = self.to_json().replace("</", "<\\/")  # no "</script>" inside the data
        ident = hashlib.sha1(data.encode()).hexdigest()[:10]
        png = self.png() if png is None else png
        image = base64.b64encode(png).decode("ascii")
        script = (
            resources.files("attention_book").joinpath("_static/explorer.js").read_text("utf-8")
        )
        return (
            f'<figure class="pa-explorer" id="pa-{ident}">'
            f'<img class="pa-static" alt="{html.escape(self.alt)}" '
            f'src="data:image/png;base64,{image}">'
            f'<script type="application/json" class="pa-data">{data}</script>'
            f"</figure>\n<style>{_CSS}</style>\n<script>{script}</script>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        png = self.png()
        return {
            "text/html": self.html(png),
            "image/png": base64.b64encode(png).decode("ascii"),
            "text/plain": f"<interactive figure: {self.alt}>",
        }


_CSS = (
    ".pa-explorer{margin:1em 0}.pa-controls{display:flex;flex-wrap:wrap;gap:1em;"
    "margin-bottom:.5em;font-size:.9em}.pa-controls select,.pa-controls input{margin-left:.3em}"
    ".pa-panels{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start}"
    ".pa-title{font-size:.85em;font-weight:600;margin-bottom:.2em}"
    ".pa-caption,.pa-readout{font-size:.85em;margin:.3em 0;min-height:1.2em}"
    ".pa-explorer [tabindex]:focus{outline:2px solid #d55e00;outline-offset:1px}"
    # the theme's dark mode: the lines of a head view in the palette's lighter blue
    'html[data-theme="dark"] .pa-lines line{stroke:#56b4e9}'
)


def explorer(
    controls: Mapping[str, Sequence[str]],
    frame: Callable[..., Sequence[Panel] | tuple[Sequence[Panel], str]],
    *,
    alt: str,
    hint: str = "Hover over or tab to a row, a token or a patch to read its weights.",
    sliders: Sequence[str] = (),
    initial: Mapping[str, int] | None = None,
    size: tuple[float, float] = (6.4, 3.0),
) -> Explorer:
    """Build an interactive figure from its controls and a function that draws one frame.

    ``frame`` is called once for every combination of the controls' choices, with one keyword
    argument per control holding the index of its choice; it returns the panels to show
    (:class:`Matrix`, :class:`Lines`, :class:`Patches`, :class:`Bars`) and, optionally, a
    caption. Every frame is computed now, so the figure needs no kernel later.

    Args:
        controls: the name of each control and the labels of its choices, in order.
        frame: ``frame(**choice) -> panels`` or ``-> (panels, caption)``.
        alt: what the figure shows, for screen readers and the static picture.
        hint: the line shown under the panels before a reader hovers.
        sliders: names of controls drawn as sliders (for ordered choices), not lists.
        initial: index of the first choice of some controls; 0 otherwise.
        size: inches of the static picture.

    Returns:
        The figure; display it as the last expression of a cell.

    Introduced in :ref:`sec-multi-head`.
    """
    if not controls:
        raise ValueError("controls must name at least one control, got none")
    names = list(controls)
    for name in names:
        if len(controls[name]) == 0:
            raise ValueError(f"control {name!r} must have at least one choice, got none")
    unknown = set(sliders) - set(names) | set(initial or {}) - set(names)
    if unknown:
        raise ValueError(
            f"sliders and initial must name controls among {names}, got {sorted(unknown)}"
        )
    if not alt.strip():
        raise ValueError("alt must describe the figure, got an empty string")
    start = [int((initial or {}).get(name, 0)) for name in names]
    for name, index in zip(names, start, strict=True):
        if not 0 <= index < len(controls[name]):
            raise ValueError(
                f"initial[{name!r}] must be in 0..{len(controls[name]) - 1}, got {index}"
            )
    frames: dict[str, dict[str, Any]] = {}
    base: list[dict[str, Any]] | None = None
    pool: list[Any] = []  # arrays and label lists, each stored once
    pooled: dict[str, int] = {}
    still: list[Panel] = []
    for choice in itertools.product(*(range(len(controls[name])) for name in names)):
        result = frame(**dict(zip(names, choice, strict=True)))
        panels, caption = result if isinstance(result, tuple) else (result, "")
        panels = list(panels)
        if not panels or not all(isinstance(p, Matrix | Lines | Patches | Bars) for p in panels):
            raise TypeError(
                f"frame{choice} must return Matrix, Lines, Patches or Bars panels, got {panels!r}"
            )
        data = [_intern(p.data(), pool, pooled) for p in panels]
        if base is None:
            base = data
        elif [d["kind"] for d in data] != [b["kind"] for b in base]:
            raise ValueError(
                f"frame{choice} must return the same kinds of panels as the first frame, "
                f"{[b['kind'] for b in base]}, got {[d['kind'] for d in data]}"
            )
        # a frame keeps only what differs from the first frame's panels: the script fills in
        # the rest (titles, labels and colours are usually the same in every frame)
        frames[",".join(map(str, choice))] = {
            "panels": [
                {k: v for k, v in d.items() if k == "kind" or b.get(k) != v}
                for d, b in zip(data, base, strict=True)
            ],
            "caption": caption,
        }
        if list(choice) == start:
            still = panels
    spec = [
        {
            "name": name,
            "options": [str(option) for option in controls[name]],
            "kind": "slider" if name in sliders else "select",
            "initial": index,
        }
        for name, index in zip(names, start, strict=True)
    ]
    return Explorer(spec, frames, alt, hint, still, size, base or [], pool)
