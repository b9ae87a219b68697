"""Time and peak memory of one call or several, measured fairly.

Part of :mod:`attention_book.bench`; import from there.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch._C._autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from .. import _validate

__all__ = ["Timing", "compare", "num_threads", "peak_memory", "power_law_exponent", "time_fn"]


@dataclass(frozen=True)
class Timing:
    """The repeated wall-clock times of one function, in seconds.

    Introduced in :ref:`sec-parallelism`.
    """

    name: str
    times: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median time in seconds, robust to a few disturbed runs."""
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        """The fastest run in seconds, what the function costs when nothing disturbs it."""
        return min(self.times)

    def ratio(self, other: Timing) -> float:
        """Return how many times slower this is than ``other``, by median.

        Args:
            other: the timing to compare with.

        Returns:
            ``self.median / other.median``; above 1 means this one is slower.
        """
        if not isinstance(other, Timing):
            raise TypeError(f"other must be a Timing, got {type(other).__name__}")
        return self.median / other.median

    def __str__(self) -> str:
        return f"{self.name}: median {1e3 * self.median:.2f} ms over {len(self.times)} runs"


def _synchronize() -> None:
    """Wait for queued GPU work, so that a timer sees the work and not just its launch."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@contextlib.contextmanager
def _silenced_stderr() -> Iterator[None]:
    """Send what C++ code writes to file descriptor 2 to the null device meanwhile."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _check_fn(name: str, fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be callable with no arguments, got {type(fn).__name__}")


def _check_counts(repeats: object, warmup: object) -> None:
    _validate.positive_int("repeats", repeats)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")


def compare(
    fns: Mapping[str, Callable[[], object]], repeats: int = 5, warmup: int = 1
) -> dict[str, Timing]:
    """Time several functions side by side, alternating between them on every repeat.

    Args:
        fns: a name for each function; each is called with no arguments.
        repeats: timed calls of each function, > 0.
        warmup: untimed calls of each function first, >= 0.

    Returns:
        A :class:`Timing` per name, in the order of ``fns``.

    Introduced in :ref:`sec-promises`, explained in :ref:`sec-parallelism`.
    """
    if not isinstance(fns, Mapping) or not fns:
        raise ValueError(f"fns must be a non-empty mapping of name -> function, got {fns!r}")
    for name, fn in fns.items():
        _check_fn(f"fns[{name!r}]", fn)
    _check_counts(repeats, warmup)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _synchronize()
            start = time.perf_counter()
            fn()
            _synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: Timing(name, tuple(t)) for name, t in times.items()}


@contextlib.contextmanager
def num_threads(threads: int) -> Iterator[None]:
    """Run the block with PyTorch limited to ``threads`` CPU threads, then restore the count.

    Timings on one thread are far steadier on a busy machine: an operation split over two
    threads waits for the slower one, and another program on the second core makes it wait
    long.

    Args:
        threads: the number of intra-op threads, > 0.

    Introduced in :ref:`sec-promises`.
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_fn(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> Timing:
    """Time one function: ``warmup`` untimed calls, then ``repeats`` timed ones.

    Args:
        fn: called with no arguments.
        repeats: timed calls, > 0.
        warmup: untimed calls first, >= 0.

    Returns:
        A :class:`Timing` named after the function.

    Introduced in :ref:`sec-quadratic-wall`.
    """
    _check_fn("fn", fn)
    name = getattr(fn, "__name__", type(fn).__name__)
    return compare({name: fn}, repeats=repeats, warmup=warmup)[name]


def peak_memory(fn: Callable[[], object], device: str | torch.device = "cpu") -> int:
    """Measure the most memory a call holds at once, beyond what was allocated before it.

    The result of ``fn`` counts while it is alive (it is dropped when the call returns), so
    the peak includes the output; memory that ``fn`` frees before returning counts only while
    it was held.

    Args:
        fn: called once with no arguments.
        device: where ``fn`` allocates its tensors: ``"cpu"`` or a CUDA device.

    Returns:
        Peak extra bytes, >= 0.

    Introduced in :ref:`sec-quadratic-wall`.
    """
    _check_fn("fn", fn)
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before)
    if device.type != "cpu":
        raise ValueError(f"device must be 'cpu' or a CUDA device, got {device}")
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _silenced_stderr():  # the profiler logs its start and stop on file descriptor 2
        prof.start()
    try:
        fn()
    finally:
        with _silenced_stderr():
            prof.stop()
    results: Any = getattr(prof.profiler, "kineto_results", None)
    if results is None:
        raise RuntimeError("the PyTorch profiler recorded no events; cannot measure CPU memory")
    changes = sorted(
        (event.start_ns(), event.nbytes())
        for event in results.events()
        if event.name() == "[memory]" and event.device_type() == DeviceType.CPU
    )
    held = peak = 0
    for _, nbytes in changes:  # replay allocations (+) and frees (-) in the order they happened
        held += nbytes
        peak = max(peak, held)
    return peak


def power_law_exponent(sizes: Sequence[float], values: Sequence[float]) -> float:
    """Fit ``value = c * size**p`` by least squares on a log-log scale and return ``p``.

    Args:
        sizes: at least two distinct positive sizes, e.g. sequence lengths.
        values: a positive measurement for each size, e.g. seconds or bytes.

    Returns:
        The exponent ``p``: about 1 for linear growth, about 2 for quadratic.

    Introduced in :ref:`sec-promises`, explained in :ref:`sec-parallelism`.
    """
    if len(sizes) != len(values) or len(sizes) < 2:
        raise ValueError(
            "sizes and values must have the same length >= 2, got "
            f"{len(sizes)} sizes and {len(values)} values"
        )
    if min(sizes) <= 0 or min(values) <= 0:
        raise ValueError(f"sizes and values must be > 0, got {list(sizes)} and {list(values)}")
    xs = [math.log(s) for s in sizes]
    ys = [math.log(v) for v in values]
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - x_mean) ** 2 for x in xs)
    if spread == 0:
        raise ValueError(f"sizes must not all be equal, got {list(sizes)}")
    return sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / spread
