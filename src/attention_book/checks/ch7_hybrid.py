"""Checkers for chapter 7's local and global layers (7.4): the cache of a hybrid stack."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._harness import _call, _expect, _require_callable, _run

__all__ = ["check_hybrid_cache_bytes"]


def _reference_hybrid_cache_bytes(
    num_layers: int,
    num_kv_heads: int,
    head_dim: int,
    length: int,
    window: int,
    global_every: int | None,
    bytes_per_number: int,
) -> int:
    globals_ = 0 if global_every is None else num_layers // global_every
    kept = globals_ * length + (num_layers - globals_) * min(window, length)
    return 2 * num_kv_heads * head_dim * kept * bytes_per_number


def check_hybrid_cache_bytes(fn: Callable[..., Any]) -> bool:
    """Check ``fn(num_layers, num_kv_heads, head_dim, length, window, global_every, nbytes)``.

    The bytes of the keys and values cached for one sequence of ``length`` positions by a
    stack of ``num_layers`` layers in which layer ``i`` (from 0) is global when
    ``(i + 1) % global_every == 0`` and local otherwise (``global_every=None``: no global
    layer). A global layer keeps every position, a local one the last ``window`` (or fewer
    when the sequence is shorter); each kept position costs a key and a value of ``head_dim``
    numbers of ``nbytes`` bytes (the page calls it ``bytes_per_number``) for each of the
    ``num_kv_heads`` heads.

    Args:
        fn: takes the seven ints (``global_every`` may be ``None``); returns an int.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-local-global`.
    """
    _require_callable("fn", fn)
    names = (
        "num_layers",
        "num_kv_heads",
        "head_dim",
        "length",
        "window",
        "global_every",
        "bytes_per_number",
    )

    def matches(values: tuple[int | None, ...], prop: str) -> Callable[[], None]:
        def check() -> None:
            args = dict(zip(names, values, strict=True))
            want = _reference_hybrid_cache_bytes(*values)  # type: ignore[arg-type]
            got = _call(fn, args, prop)
            ok = isinstance(got, (int, float)) and not isinstance(got, bool) and got == want
            _expect(ok, prop, args, want, got)

        return check

    return _run(
        "hybrid_cache_bytes",
        [
            matches((1, 1, 1, 1, 1, 1, 1), "one global layer, one head of size 1, one position"),
            matches((4, 2, 8, 100, 16, 1, 4), "every layer global: the plain KV cache"),
            matches((4, 2, 8, 100, 16, None, 4), "no global layer: every layer keeps a window"),
            matches((4, 2, 8, 10, 16, 2, 2), "a window longer than the sequence keeps it all"),
            matches((12, 4, 16, 2048, 256, 6, 2), "12 layers, one global in 6: layers 5 and 11"),
            matches((8, 1, 4, 50, 10, 6, 1), "8 layers, one global in 6: layer 5, not 0 and 6"),
            matches((5, 2, 4, 30, 8, 2, 4), "5 layers, one global in 2: layers 1 and 3"),
        ],
    )
