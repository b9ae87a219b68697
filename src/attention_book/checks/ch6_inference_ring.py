"""Checkers for chapter 6's serving: grouped keys and values (6.7), ring attention (6.8)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ._harness import (
    _array,
    _call,
    _close,
    _expect,
    _pair,
    _randn,
    _require_callable,
    _run,
)

__all__ = [
    "check_causal_ring_skips",
    "check_grouped_query_attention",
    "check_repeat_kv",
    "check_ring_step",
]


def check_repeat_kv(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, n_rep)``: repeat each key/value head for the query heads of its group.

    ``x`` is ``(B, H_kv, M, d)``; the result is ``(B, H_kv * n_rep, M, d)`` whose head ``h``
    is head ``h // n_rep`` of ``x``, as grouped-query attention needs.

    Args:
        fn: takes a tensor ``x`` and an int ``n_rep`` > 0; returns a tensor.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-inference`.
    """
    _require_callable("fn", fn)

    def matches(x: torch.Tensor, n_rep: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"x": x.clone(), "n_rep": n_rep}
            want = x.repeat_interleave(n_rep, dim=1)
            got = _array(_call(fn, args, prop), "the result", prop, args)
            if got.shape != tuple(want.shape):
                _expect(False, prop, args, f"shape {tuple(want.shape)}", f"shape {got.shape}")
            heads = [round(float(got[0, h, 0, 0])) // 100 for h in range(got.shape[1])]
            wanted = [int(w) // 100 for w in want[0, :, 0, 0].tolist()]
            if heads != wanted:  # entry = 100 * head + 10 * position + feature: name the heads
                _expect(False, prop, args, f"heads in the order {wanted}", f"heads {heads}")
            _expect(_close(got, want.numpy()), prop, args, want, got)

        return check

    def numbered(b: int, h: int, m: int, d: int) -> torch.Tensor:
        """Entries 100 * head + 10 * position + feature (+ 1000 * batch): easy to read."""
        x = (
            1000 * torch.arange(b)[:, None, None, None]
            + 100 * torch.arange(h)[None, :, None, None]
            + 10 * torch.arange(m)[None, None, :, None]
            + torch.arange(d)[None, None, None, :]
        )
        return x.to(torch.float64)

    return _run(
        "repeat_kv",
        [
            matches(numbered(1, 2, 3, 2), 1, "n_rep = 1 (multi-head attention): x unchanged"),
            matches(numbered(1, 2, 3, 2), 2, "two key/value heads for four query heads"),
            matches(numbered(1, 3, 2, 2), 4, "heads in place, 0 0 0 0 1 1 1 1 ..., not tiled"),
            matches(numbered(1, 1, 4, 3), 8, "one key/value head for eight (multi-query)"),
            matches(numbered(2, 2, 5, 4), 3, "a batch of two; positions and features untouched"),
        ],
    )


def _reference_gqa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    n, m = q.shape[-2], k.shape[-2]
    mask = torch.ones(n, m, dtype=torch.bool).tril(diagonal=m - n)  # queries: the last n of m
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, -math.inf)
    return torch.softmax(scores, dim=-1) @ v


def check_grouped_query_attention(fn: Callable[..., Any]) -> bool:
    """Check ``fn(q, k, v)``: causal attention in which groups of query heads share keys.

    ``q`` is ``(B, H, N, d)``, ``k`` and ``v`` are ``(B, H_kv, M, d)`` with ``H_kv`` dividing
    ``H`` and ``N <= M``: the queries are the last ``N`` of ``M`` positions (earlier ones come
    from a cache), and query ``i`` sees keys ``0 .. M - N + i``. Query head ``h`` uses key/value
    head ``h // (H / H_kv)``; scores are scaled by ``1 / sqrt(d)``.

    Args:
        fn: takes ``q``, ``k``, ``v``; returns the output ``(B, H, N, d)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-inference`.
    """
    _require_callable("fn", fn)

    def matches(
        heads: int, kv_heads: int, n: int, m: int, prop: str, seed: int
    ) -> Callable[[], None]:
        def check() -> None:
            q = _randn(2, heads, n, 4, seed=seed)
            k, v = (
                _randn(2, kv_heads, m, 4, seed=seed + 1),
                _randn(2, kv_heads, m, 4, seed=seed + 2),
            )
            args = {"q": q.clone(), "k": k.clone(), "v": v.clone()}
            want = _reference_gqa(q, k, v)
            got = _array(_call(fn, args, prop), "the output", prop, args)
            _expect(_close(got, want.numpy()), prop, args, want, got)

        return check

    return _run(
        "grouped_query_attention",
        [
            matches(2, 2, 5, 5, "as many key/value heads as query heads: causal multi-head", 31),
            matches(4, 1, 5, 5, "one key/value head shared by every query head (MQA)", 32),
            matches(4, 2, 5, 5, "heads 0, 1 read key/value head 0; heads 2, 3 read head 1", 33),
            matches(4, 2, 1, 7, "one decoding step: the new query sees all 7 cached keys", 34),
            matches(6, 3, 3, 8, "3 new queries after 5 cached keys: query i sees 5 + i + 1", 35),
        ],
    )


def _reference_ring_step(
    out: torch.Tensor, lse: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    part, part_lse = torch.softmax(s, -1) @ v, torch.logsumexp(s, -1)
    new_lse = torch.logaddexp(lse, part_lse)
    safe = torch.where(torch.isfinite(new_lse), new_lse, torch.zeros_like(new_lse))
    mixed = torch.exp(lse - safe)[..., None] * out + torch.exp(part_lse - safe)[..., None] * part
    return mixed, new_lse


def check_ring_step(fn: Callable[..., Any]) -> bool:
    """Check ``fn(out, lse, q, k, v) -> (out, lse)``: one step of ring attention on one rank.

    ``out`` and ``lse`` are the rank's running attention output and the log-sum-exp of its
    scores over the key blocks seen so far (``0`` and ``-inf`` before the first); ``k`` and
    ``v`` are the block that just arrived. The function returns the pair for the keys seen so
    far and the new block, with scores ``q k^T / sqrt(d)``. Applied to every block in any
    order, it gives attention over all keys.

    Args:
        fn: takes ``out (..., n, d_v)``, ``lse (..., n)``, ``q (..., n, d)``, ``k (..., b, d)``
            and ``v (..., b, d_v)``; returns ``(out, lse)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-ring-attention`.
    """
    _require_callable("fn", fn)

    def ring(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, order: list[int], prop: str
    ) -> Callable[[], None]:
        def check() -> None:
            k_blocks, v_blocks = k.chunk(len(order), dim=-2), v.chunk(len(order), dim=-2)
            out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
            lse = torch.full(q.shape[:-1], -math.inf, dtype=q.dtype)
            for j in order:  # the student's result of one step is the input of the next
                args = {"out": out, "lse": lse, "q": q, "k": k_blocks[j], "v": v_blocks[j]}
                want_out, want_lse = _reference_ring_step(out, lse, q, k_blocks[j], v_blocks[j])
                got = _pair(fn, {n: x.clone() for n, x in args.items()}, prop, ("out", "lse"))
                _expect(_close(got[0], want_out.numpy()), f"{prop} (out)", args, want_out, got[0])
                _expect(_close(got[1], want_lse.numpy()), f"{prop} (lse)", args, want_lse, got[1])
                out, lse = torch.from_numpy(got[0]), torch.from_numpy(got[1])

        return check

    q, k, v = _randn(3, 16, seed=21), _randn(8, 16, seed=22), _randn(8, 2, seed=23)
    q4, k4, v4 = (
        _randn(2, 3, 4, 4, seed=24),
        _randn(2, 3, 12, 4, seed=25),
        _randn(2, 3, 12, 3, seed=26),
    )
    return _run(
        "ring_step",
        [
            ring(q, k, v, [0], "the first step (out = 0, lse = -inf): attention over one block"),
            ring(q, k, v, [0, 1], "two steps: attention over both blocks, scores / sqrt(d)"),
            ring(q4, k4, v4, [1, 2, 0], "batch and head dims; the blocks arrive as 1, 2, 0"),
            ring(q * 1000, k, v, [0, 1], "scores in the thousands: exp overflows unless you shift"),
        ],
    )


def check_causal_ring_skips(fn: Callable[..., Any]) -> bool:
    """Check ``fn(world_size)``: the ``(rank, step)`` pairs a causal ring can skip.

    At step ``s`` rank ``r`` holds the key-value block of rank ``(r - s) mod P``. With a
    causal mask, a block whose keys all come after the rank's queries contributes nothing, and
    the rank can skip that step's computation. The function returns those pairs, in any order.

    Args:
        fn: takes an int ``world_size`` > 0; returns a collection of ``(rank, step)`` pairs.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-ring-attention`.
    """
    _require_callable("fn", fn)

    def matches(world: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"world_size": world}
            want = [(r, s) for r in range(world) for s in range(world) if (r - s) % world > r]
            got = _call(fn, args, prop)
            try:
                pairs: Any = sorted((int(r), int(s)) for r, s in got)
            except (TypeError, ValueError):
                shape = f"{prop}: return a collection of (rank, step) pairs"
                _expect(False, shape, args, want, got)
            _expect(pairs == want, prop, args, want, pairs)

        return check

    return _run(
        "causal_ring_skips",
        [
            matches(1, "one rank: nothing to skip"),
            matches(2, "two ranks: rank 0 skips the block of rank 1"),
            matches(4, "four ranks: no rank skips its own block (step 0)"),
            matches(7, "seven ranks: P (P - 1) / 2 of the P^2 steps are skipped"),
        ],
    )
