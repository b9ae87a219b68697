"""Checker for chapter 6's memory hierarchy: the words FlashAttention moves to and from HBM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..efficient import flash_attention_io
from ._harness import _call, _expect, _randn, _require_callable, _run

__all__ = ["check_flash_io_count"]


def check_flash_io_count(fn: Callable[..., Any]) -> bool:
    """Check ``fn(n, d, block_q, block_k, order)``: the words FlashAttention moves, in closed form.

    For self-attention with ``q, k, v`` of shape ``(n, d)``, query blocks of ``block_q`` rows
    and key/value blocks of ``block_k`` rows, the function returns the words read from and
    written to slow memory (reads plus writes) in the loop order ``order``: ``"fa1"``
    (FlashAttention-1: key/value blocks outer; ``Q_i, O_i, l_i, m_i`` read and
    ``O_i, l_i, m_i`` written for every tile) or ``"fa2"`` (FlashAttention-2: query blocks
    outer; ``O_i`` and the log-sum-exp ``L_i`` written once). The checker compares with what
    :func:`attention_book.efficient.flash_attention_io` measures on real tensors.

    Args:
        fn: takes ints ``n, d, block_q, block_k`` > 0 and a str ``order``; returns a number.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-flash-backward`.
    """
    _require_callable("fn", fn)

    def matches(
        n: int, d: int, block_q: int, block_k: int, order: str, prop: str
    ) -> Callable[[], None]:
        def check() -> None:
            args = {"n": n, "d": d, "block_q": block_q, "block_k": block_k, "order": order}
            q, k, v = (_randn(n, d, seed=seed) for seed in (21, 22, 23))
            big = 2 * d * (block_q + block_k) + 2 * block_q + block_q * block_k  # one tile fits
            want = flash_attention_io(q, k, v, big, order, block_size=(block_q, block_k))[1].total
            got = _call(fn, args, prop)
            number = isinstance(got, (int, float, np.integer, np.floating))
            _expect(number and not isinstance(got, bool) and got == want, prop, args, want, got)

        return check

    return _run(
        "flash_io_count",
        [
            matches(8, 4, 4, 4, "fa2", "FA-2, blocks divide N: Q, O, L once; K, V per query block"),
            matches(8, 4, 4, 4, "fa1", "FA-1, blocks divide N: Q, O, l and m every pass"),
            matches(12, 2, 2, 6, "fa1", "FA-1: block_k, the outer loop's, sets the passes"),
            matches(12, 2, 6, 2, "fa2", "FA-2: block_q, the outer loop's, sets the passes"),
            matches(10, 3, 4, 3, "fa2", "N = 10, query blocks of 4: a last block of 2 rows"),
            matches(10, 3, 3, 4, "fa1", "N = 10, key blocks of 4: a last block of 2 rows"),
            matches(5, 2, 1, 5, "fa2", "one query per block: K and V are read N times"),
            matches(6, 2, 16, 16, "fa1", "blocks longer than N: one block, one pass"),
            matches(1024, 64, 128, 64, "fa2", "N = 1024, d = 64, blocks of 128 queries"),
            matches(1024, 64, 64, 128, "fa1", "N = 1024, d = 64, blocks of 128 keys"),
        ],
    )
