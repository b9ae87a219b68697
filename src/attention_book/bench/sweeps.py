"""A sweep of attention implementations against the sequence length, and its reports.

Part of :mod:`attention_book.bench`; import from there.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .. import _validate
from ..attention import causal_mask
from ..efficient import (
    flash_attention,
    linear_attention,
    linformer_attention,
    performer_attention,
    random_features,
    sliding_window_attention,
    sparse_attention_mask,
)
from .timing import _check_counts, _check_fn, compare, peak_memory

if TYPE_CHECKING:
    import matplotlib.figure

__all__ = [
    "IMPLEMENTATIONS",
    "REFERENCE_MASKS",
    "SweepRow",
    "crossover",
    "format_sweep",
    "load_sweep",
    "plot_sweep",
    "save_sweep",
    "sweep",
]

AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
MaskFn = Callable[[int], torch.Tensor]


def _naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v as written: the (..., N, N) scores and weights are stored."""
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v


@functools.cache
def _features(d: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Performer's 256 random features for queries of size d, the same for every call."""
    return random_features(256, d, generator=torch.Generator().manual_seed(0)).to(device, dtype)


def _performer(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return performer_attention(q, k, v, _features(q.shape[-1], q.device, q.dtype))


@functools.cache
def _projection(m: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Linformer's (256, M) projection: Gaussian, scaled by 1/sqrt(256), fixed per M."""
    e = torch.randn(256, m, generator=torch.Generator().manual_seed(0)) / 16
    return e.to(device, dtype)


def _linformer(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return linformer_attention(q, k, v, _projection(k.shape[-2], k.device, k.dtype))


# What sweep measures by default; documented in attention_book.bench, which exports it.
IMPLEMENTATIONS: dict[str, AttentionFn] = {
    "naive": _naive_attention,
    "sdpa": F.scaled_dot_product_attention,
    "sdpa_causal": functools.partial(F.scaled_dot_product_attention, is_causal=True),
    "flash": flash_attention,
    "flash_causal": functools.partial(flash_attention, causal=True),
    "window": functools.partial(sliding_window_attention, window=256),
    "linear": linear_attention,
    "linear_causal": functools.partial(linear_attention, causal=True),
    "window_global": functools.partial(sliding_window_attention, window=256, global_tokens=[0]),
    "dilated": functools.partial(sliding_window_attention, window=128, dilation=2),
    "performer": _performer,
    "linformer": _linformer,
}

# Documented in attention_book.bench, which exports it.
REFERENCE_MASKS: dict[str, MaskFn] = {
    "sdpa_causal": causal_mask,
    "flash_causal": causal_mask,
    "linear_causal": causal_mask,
    "window": functools.partial(sparse_attention_mask, window=256),
    "window_global": functools.partial(sparse_attention_mask, window=256, global_tokens=[0]),
    "dilated": functools.partial(sparse_attention_mask, window=128, dilation=2),
}


@dataclass(frozen=True)
class SweepRow:
    """What :func:`sweep` measured at one sequence length, by implementation name.

    Attributes:
        n: the sequence length ``N`` (queries and keys).
        ms: median milliseconds per call.
        best_ms: fastest milliseconds per call.
        peak_mib: peak extra memory of one call in MiB (:func:`peak_memory`).
        max_abs_error: largest absolute difference from exact attention in float64.

    Introduced in :ref:`sec-benchmark-machine`.
    """

    n: int
    ms: dict[str, float]
    best_ms: dict[str, float]
    peak_mib: dict[str, float]
    max_abs_error: dict[str, float]


def sweep(
    implementations: Mapping[str, AttentionFn] | None = None,
    sizes: Sequence[int] = (256, 512, 1024, 2048),
    *,
    heads: int = 8,
    dim: int = 64,
    repeats: int = 3,
    masks: Mapping[str, MaskFn] | None = None,
    max_n: Mapping[str, int] | None = None,
    seed: int = 0,
    verbose: bool = False,
) -> list[SweepRow]:
    """Measure time, peak memory and error of attention implementations as N grows.

    For each ``N`` the inputs are ``(1, heads, N, dim)`` float32 tensors drawn from a normal
    distribution. Every implementation is timed in turns with :func:`compare` (one warm-up
    call, then ``repeats`` timed calls), so that a slow spell of the machine hits all of them
    alike; then each one's peak memory is measured with :func:`peak_memory`, and its output is
    compared with PyTorch's SDPA in float64 on the same inputs, with the mask from ``masks``.

    Args:
        implementations: name -> function of ``(q, k, v)``; ``None`` means
            :data:`IMPLEMENTATIONS`.
        sizes: the sequence lengths, each > 0.
        heads: attention heads, > 0.
        dim: size of each query, key and value, > 0.
        repeats: timed calls per implementation and ``N``, > 0.
        masks: name -> function of ``N`` returning the boolean mask of the exact attention the
            implementation is compared with; ``None`` means :data:`REFERENCE_MASKS`. Names not
            in it are compared with unmasked attention.
        max_n: name -> the largest ``N`` at which to run it (e.g. to spare naive attention's
            memory); names not in it run at every size.
        seed: seeds the inputs.
        verbose: print each row's median times as it is measured.

    Returns:
        One :class:`SweepRow` per size, in the order of ``sizes``.

    Introduced in :ref:`sec-benchmark-machine`.
    """
    fns = dict(IMPLEMENTATIONS if implementations is None else implementations)
    if not fns:
        raise ValueError("implementations must name at least one function")
    for name, fn in fns.items():
        _check_fn(f"implementations[{name!r}]", fn)
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or not sizes:
        raise ValueError(f"sizes must be a non-empty sequence of ints > 0, got {sizes!r}")
    for size in sizes:
        _validate.positive_int("each size", size)
    heads = _validate.positive_int("heads", heads)
    dim = _validate.positive_int("dim", dim)
    _check_counts(repeats, 1)
    masks = dict(REFERENCE_MASKS if masks is None else masks)
    limits = dict(max_n or {})
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for n in sizes:
        q, k, v = (torch.randn(1, heads, n, dim, generator=generator) for _ in range(3))
        here = {name: fn for name, fn in fns.items() if n <= limits.get(name, n)}
        calls = {name: functools.partial(fn, q, k, v) for name, fn in here.items()}
        timings = compare(calls, repeats=repeats, warmup=1)
        memory = {name: peak_memory(call) / 2**20 for name, call in calls.items()}
        exact: dict[MaskFn | None, torch.Tensor] = {}
        errors = {}
        for name, call in calls.items():
            mask_fn = masks.get(name)
            if mask_fn not in exact:
                mask = None if mask_fn is None else mask_fn(n)
                exact[mask_fn] = F.scaled_dot_product_attention(
                    q.double(), k.double(), v.double(), attn_mask=mask
                )
            errors[name] = (call().double() - exact[mask_fn]).abs().max().item()
        row = SweepRow(
            n=n,
            ms={name: 1e3 * t.median for name, t in timings.items()},
            best_ms={name: 1e3 * t.best for name, t in timings.items()},
            peak_mib=memory,
            max_abs_error=errors,
        )
        rows.append(row)
        if verbose:
            shown = "  ".join(f"{name} {ms:.1f}" for name, ms in row.ms.items())
            print(f"N={n:6d}  ms: {shown}", flush=True)
    return rows


def _check_rows(rows: object) -> list[SweepRow]:
    if not isinstance(rows, Sequence) or not rows or not all(isinstance(r, SweepRow) for r in rows):
        raise ValueError("rows must be a non-empty list of SweepRow, as sweep() returns")
    return list(rows)


_COLUMNS = ("ms", "best_ms", "peak_mib", "max_abs_error")


def format_sweep(rows: Sequence[SweepRow], key: str = "ms") -> str:
    """Return one measurement of a sweep as a text table: an implementation per line.

    Args:
        rows: what :func:`sweep` returned.
        key: which measurement: ``"ms"``, ``"best_ms"``, ``"peak_mib"`` or
            ``"max_abs_error"``.

    Returns:
        The table, with a column per ``N``; ``-`` where an implementation did not run.

    Introduced in :ref:`sec-benchmark-machine`.
    """
    rows = _check_rows(rows)
    if key not in _COLUMNS:
        raise ValueError(f"key must be one of {_COLUMNS}, got {key!r}")
    names = list(dict.fromkeys(name for row in rows for name in getattr(row, key)))
    width = max(len(name) for name in names)
    shown = "{:9.2e}" if key == "max_abs_error" else "{:9.1f}"
    lines = [f"{key:>{width}} " + "".join(f"{'N=' + str(row.n):>10}" for row in rows)]
    for name in names:
        cells = [getattr(row, key).get(name) for row in rows]
        lines.append(
            f"{name:>{width}} "
            + "".join(" " + (shown.format(c) if c is not None else f"{'-':>9}") for c in cells)
        )
    return "\n".join(lines)


def crossover(rows: Sequence[SweepRow], name: str, baseline: str, key: str = "ms") -> int | None:
    """Return the smallest measured N from which ``name`` is faster than ``baseline``.

    "From which" means at that N and at every larger N where both were measured, so one lucky
    measurement at a small N does not count.

    Args:
        rows: what :func:`sweep` returned.
        name: the implementation that should become faster, e.g. ``"linear"``.
        baseline: the one it is compared with, e.g. ``"sdpa"``.
        key: ``"ms"`` (medians) or ``"best_ms"`` (fastest calls).

    Returns:
        That N, or ``None`` if ``name`` is not faster at the largest N measured.

    Introduced in :ref:`sec-benchmark-machine`.
    """
    rows = _check_rows(rows)
    if key not in ("ms", "best_ms"):
        raise ValueError(f"key must be 'ms' or 'best_ms', got {key!r}")
    both = sorted(
        (row.n, getattr(row, key)[name] < getattr(row, key)[baseline])
        for row in rows
        if name in getattr(row, key) and baseline in getattr(row, key)
    )
    if not both:
        raise ValueError(f"no row measured both {name!r} and {baseline!r}")
    found = None
    for n, faster in reversed(both):
        if not faster:
            break
        found = n
    return found


def plot_sweep(rows: Sequence[SweepRow], title: str | None = None) -> matplotlib.figure.Figure:
    """Plot time, peak memory and error against N, one line per implementation.

    Three log-log panels; a causal version (name ending in ``_causal``) is drawn dashed in the
    colour of its plain version. Call :func:`attention_book.plots.use_style` first for the
    book's style.

    Args:
        rows: what :func:`sweep` returned.
        title: a title over the three panels, e.g. the machine's name.

    Returns:
        The matplotlib figure.

    Introduced in :ref:`sec-benchmark-machine`.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    from ..plots import PALETTE

    rows = _check_rows(rows)
    ns = [row.n for row in rows]
    names = list(dict.fromkeys(name for row in rows for name in row.ms))
    bases = list(dict.fromkeys(name.removesuffix("_causal") for name in names))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained")
    panels = [
        ("ms", "ms per call (median)", "time"),
        ("peak_mib", "peak extra MiB", "memory"),
        ("max_abs_error", "max abs error vs float64", "error"),
    ]
    for ax, (key, ylabel, panel) in zip(axes, panels, strict=True):
        for name in names:
            points = [(row.n, getattr(row, key)[name]) for row in rows if name in getattr(row, key)]
            points = [(n, max(y, 1e-12)) for n, y in points]  # log scale: an exact 0 shows low
            base = bases.index(name.removesuffix("_causal"))
            ax.plot(
                *zip(*points, strict=True),
                linestyle="--" if name.endswith("_causal") else "-",
                marker="os^vDP*Xh"[base % 9],  # 9 markers, 8 colours: 72 pairs
                color=PALETTE[base % len(PALETTE)],
                label=name,
            )
        ax.set(xscale="log", yscale="log", xlabel="sequence length N", ylabel=ylabel, title=panel)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.xaxis.set_minor_locator(NullLocator())
    axes[2].legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    if title:
        fig.suptitle(title)
    return fig


def save_sweep(rows: Sequence[SweepRow], path: str | Path, **metadata: object) -> Path:
    """Write a sweep to a JSON file: ``metadata`` and the rows.

    Args:
        rows: what :func:`sweep` returned.
        path: the file to write.
        metadata: more keys for the file, e.g. the machine and the number of threads.

    Returns:
        The path written.

    Introduced in :ref:`sec-benchmark-machine`.
    """
    rows = _check_rows(rows)
    path = Path(path)
    content = {**metadata, "rows": [dataclasses.asdict(row) for row in rows]}
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path


def load_sweep(path: str | Path) -> list[SweepRow]:
    """Read the rows of a sweep that :func:`save_sweep` (or ``make bench``) wrote.

    Args:
        path: the JSON file, e.g. ``benchmarks/results/efficient.json``.

    Returns:
        The rows, as :func:`sweep` returned them.

    Introduced in :ref:`sec-benchmark-machine`.
    """
    content = json.loads(Path(path).read_text())
    return [SweepRow(**row) for row in content["rows"]]
