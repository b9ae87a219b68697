"""Closed forms for the words attention moves between slow and fast memory, and block sizes.

They count, word for word, what the simulators of ``memory`` measure: standard attention's
``Theta(Nd + N^2)`` and FlashAttention's ``Theta(N^2 d^2 / M)`` (Dao et al. 2022, Theorem 2),
with the constants that those algorithms realise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import _validate

__all__ = [
    "IOCount",
    "flash_attention_io_formula",
    "flash_block_sizes",
    "standard_attention_io_formula",
]


@dataclass(frozen=True)
class IOCount:
    """Words moved: ``reads`` from slow into fast memory, ``writes`` back, and their ``total``.

    Introduced in :ref:`sec-flash-backward`.
    """

    reads: int
    writes: int
    total: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "total", self.reads + self.writes)


def flash_block_sizes(n: int, d: int, fast_words: int, order: str = "fa2") -> tuple[int, int]:
    """Choose ``(block_q, block_k)`` by the paper's rule, so that a tile fits in fast memory.

    Algorithm 1 of Dao et al. (2022) puts key/value blocks of ``B_c = ceil(M / 4d)`` rows in
    the outer loop and query blocks of ``B_r = min(B_c, d)`` rows in the inner one: the outer
    block stays on chip while the inner ones stream past, and ``B_r <= d`` keeps the tile of
    scores under ``M / 4`` words. The paper counts up to constants; here a tile (blocks of
    ``Q, O, K, V``, scores, ``l`` and ``m``) must fit in ``M`` words, so the outer block gets
    ``floor(M / 4d)`` rows (fewer if ``M < ~16d`` leaves no room for one inner row) and the
    inner block ``min(outer, d)``, or fewer if the tile would not fit. FlashAttention-2 swaps
    the loops, and so the blocks: its outer block is the queries'. Both are at most ``N``.

    Args:
        n: sequence length ``N``, > 0.
        d: head size, > 0.
        fast_words: words of fast memory ``M``, at least ``4d + 3``.
        order: ``"fa1"`` (key/value blocks outer) or ``"fa2"`` (query blocks outer).

    Returns:
        ``(block_q, block_k)``.

    Introduced in :ref:`sec-flash-backward`.
    """
    n, d = _validate.positive_int("n", n), _validate.positive_int("d", d)
    return _flash_blocks(n, d, fast_words, order, None)


def standard_attention_io_formula(n: int, d: int, fast_words: int | None = None) -> IOCount:
    """Count the words :func:`standard_attention_io` moves, in closed form.

    With ``T = ceil(N / b)`` tiles a side and ``p`` reads of ``S`` by the softmax (1 if
    ``N + 2 <= M``, else 2): reads ``(1 + 2T) Nd + (1 + p) N^2`` (``Q`` once, ``K`` and ``V``
    once per query block, ``S`` and ``P``), writes ``2N^2 + Nd`` (``S``, ``P``, ``O``).
    With ``fast_words=None`` every matrix is read once (``T = p = 1``, as if ``M >= N^2 + 2Nd``),
    as in the paper's proof: ``4N^2 + 4Nd`` words in all.

    Args:
        n: sequence length ``N``, > 0.
        d: head size, > 0.
        fast_words: words of fast memory ``M``, at least ``2d + 1``, or ``None``.

    Returns:
        The :class:`IOCount`.

    Introduced in :ref:`sec-flash-backward`.
    """
    n, d = _validate.positive_int("n", n), _validate.positive_int("d", d)
    tiles, passes = 1, 1
    if fast_words is not None:
        tiles, passes = -(-n // _standard_block(n, d, fast_words)), 1 if n + 2 <= fast_words else 2
    return IOCount((1 + 2 * tiles) * n * d + (1 + passes) * n * n, 2 * n * n + n * d)


def flash_attention_io_formula(
    n: int, d: int, fast_words: int, order: str = "fa2", block_size: tuple[int, int] | None = None
) -> IOCount:
    """Count the words :func:`flash_attention_io` moves, in closed form.

    ``"fa1"`` makes ``T = ceil(N / block_k)`` passes over the queries: reads ``2Nd + T(2Nd +
    2N)`` (``K, V`` once; ``Q, O, l, m`` every pass), writes ``T(Nd + 2N)``. ``"fa2"`` makes
    ``T = ceil(N / block_q)`` passes over the keys: reads ``Nd + 2NdT``, writes ``Nd + N``.
    With the default blocks ``T ~ 4Nd / M``: about ``12 N^2 d^2 / M`` words for ``"fa1"`` and
    ``8 N^2 d^2 / M`` for ``"fa2"`` (the paper's ``Theta(N^2 d^2 / M)``), plus ``O(Nd)``.

    Args:
        n: sequence length ``N``, > 0.
        d: head size, > 0.
        fast_words: words of fast memory ``M``, at least ``4d + 3``.
        order: the loop order, ``"fa1"`` or ``"fa2"``.
        block_size: ``(block_q, block_k)``; ``None`` means :func:`flash_block_sizes`.

    Returns:
        The :class:`IOCount`.

    Introduced in :ref:`sec-flash-backward`.
    """
    n, d = _validate.positive_int("n", n), _validate.positive_int("d", d)
    bq, bk = _flash_blocks(n, d, fast_words, order, block_size)
    if order == "fa1":
        t = -(-n // bk)
        return IOCount(2 * n * d + t * (2 * n * d + 2 * n), t * (n * d + 2 * n))
    return IOCount(n * d + 2 * n * d * -(-n // bq), n * d + n)


def _standard_block(n: int, d: int, fast_words: object) -> int:
    """The largest ``b <= N`` with ``2bd + b^2 <= M``: a tile of scores and its two operands."""
    fast_words = _validate.positive_int("fast_words", fast_words)
    if fast_words < 2 * d + 1:
        raise ValueError(
            f"fast_words must be >= 2d + 1 = {2 * d + 1} (a row of Q, a row of K, a score), "
            f"got {fast_words}"
        )
    return min(n, math.isqrt(d * d + fast_words) - d)


def _flash_blocks(
    n: int, d: int, fast_words: object, order: object, block_size: object
) -> tuple[int, int]:
    fast_words = _validate.positive_int("fast_words", fast_words)
    if order not in ("fa1", "fa2"):
        raise ValueError(
            f"order must be 'fa1' (key/value blocks outer) or 'fa2' (query blocks outer), "
            f"got {order!r}"
        )
    if block_size is not None:
        if not (isinstance(block_size, tuple) and len(block_size) == 2):
            raise TypeError(f"block_size must be a pair (block_q, block_k), got {block_size!r}")
        bq = min(n, _validate.positive_int("block_size[0]", block_size[0]))
        bk = min(n, _validate.positive_int("block_size[1]", block_size[1]))
        if (need := 2 * d * (bq + bk) + 2 * bq + bq * bk) > fast_words:
            raise ValueError(
                f"block_size {block_size} needs 2d(block_q + block_k) + 2 block_q + "
                f"block_q block_k = {need} words of fast memory, fast_words is {fast_words}"
            )
        return bq, bk
    if fast_words < 4 * d + 3:
        raise ValueError(
            f"fast_words must be >= 4d + 3 = {4 * d + 3} (a row of Q, O, K and V, a score, "
            f"l and m), got {fast_words}"
        )
    # words per row of the outer and the inner block: K and V; or Q, O, l and m
    outer_row, inner_row = (2 * d, 2 * d + 2) if order == "fa1" else (2 * d + 2, 2 * d)
    outer = min(fast_words // (4 * d), (fast_words - inner_row) // (outer_row + 1))
    inner = min(d, outer, (fast_words - outer_row * outer) // (inner_row + outer))
    outer, inner = min(outer, n), min(inner, n)
    return (inner, outer) if order == "fa1" else (outer, inner)
