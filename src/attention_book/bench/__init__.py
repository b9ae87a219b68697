"""Measure time and peak memory fairly: warm up, repeat, alternate, take medians.

Timing a function once tells little: the first call pays for lazy initialisation, and later
calls scatter because the machine does other things. :func:`compare` therefore warms every
candidate up, then times them in turns (A, B, A, B, ...) so that a slow spell of the machine
hits all of them alike, and reports medians. Ratios of those medians are what the book
quotes; absolute times belong to one machine.

:func:`peak_memory` reports the largest amount of memory a call holds at once on top of what
was allocated before it. On CUDA it reads the caching allocator's counters; on the CPU, which
keeps no such counters, it records every allocation and free with PyTorch's profiler and
replays them in order.

:func:`sweep` puts both together for a table of attention implementations
(:data:`IMPLEMENTATIONS`, a name for each function of ``(q, k, v)``) over a range of sequence
lengths, and adds each one's largest error against exact attention computed in float64;
:func:`plot_sweep`, :func:`format_sweep` and :func:`crossover` read the result. The command
``make bench`` (``python -m benchmarks.efficient``) runs the whole table up to ``N = 8192``.

The code lives in two modules, ``timing`` (the measurements) and ``sweeps`` (the table of
implementations); import everything from here: ``from attention_book import bench``.
"""

from __future__ import annotations

from .._facade import adopt
from . import sweeps as _sweeps
from .sweeps import (
    SweepRow,
    crossover,
    format_sweep,
    load_sweep,
    plot_sweep,
    save_sweep,
    sweep,
)
from .timing import Timing, compare, num_threads, peak_memory, power_law_exponent, time_fn

#: The attention implementations that :func:`sweep` measures by default, by name; each
#: takes ``(q, k, v)`` and returns the output. ``naive`` is the formula as written; ``sdpa`` is
#: PyTorch's fused kernel; ``flash`` is :func:`~attention_book.efficient.flash_attention`;
#: ``window`` is causal :func:`~attention_book.efficient.sliding_window_attention` with a
#: window of 256 (``window_global`` adds a global token at position 0, ``dilated`` is a window
#: of 128 keys spaced 2 apart); ``linear`` is :func:`~attention_book.efficient.linear_attention`;
#: ``performer`` uses 256 fixed random features and ``linformer`` a fixed random projection to
#: 256 rows (both approximate unmasked attention); a ``_causal`` suffix means the causal
#: version. To measure another one, add it (and, if it
#: equals or approximates masked attention, its mask in :data:`REFERENCE_MASKS`).
#:
#: :meta hide-value:
IMPLEMENTATIONS = _sweeps.IMPLEMENTATIONS

#: The mask of the exact attention each implementation is compared with, as a function of
#: ``N`` returning a boolean ``(N, N)`` mask; implementations not named here are compared with
#: attention without a mask.
#:
#: :meta hide-value:
REFERENCE_MASKS = _sweeps.REFERENCE_MASKS

__all__ = [
    "IMPLEMENTATIONS",
    "REFERENCE_MASKS",
    "SweepRow",
    "Timing",
    "compare",
    "crossover",
    "format_sweep",
    "load_sweep",
    "num_threads",
    "peak_memory",
    "plot_sweep",
    "power_law_exponent",
    "save_sweep",
    "sweep",
    "time_fn",
]

adopt(globals(), __all__)  # document and pickle them under this package
