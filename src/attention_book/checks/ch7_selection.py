"""Checkers for chapter 7's learned sparse attention (7.7): block scores and the block mask."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._harness import _array, _call, _copy, _expect, _randn, _require_callable, _run

__all__ = ["check_block_scores", "check_topk_block_mask"]


def _reference_block_scores(q: torch.Tensor, k: torch.Tensor, block_size: int) -> torch.Tensor:
    n, d = q.shape
    nb, nq = n // block_size, -(-n // block_size)
    kc = k[: nb * block_size].reshape(nb, block_size, d).mean(1)  # (nb, d)
    logits = q @ kc.T / math.sqrt(d)  # (N, nb)
    scores = torch.full((nq, nb), -math.inf, dtype=q.dtype)
    for i in range(n):
        qb = i // block_size
        if qb == 0:
            continue
        p = torch.softmax(logits[i, :qb], -1)
        scores[qb, :qb] = torch.where(scores[qb, :qb] == -math.inf, 0.0, scores[qb, :qb]) + p
    return scores


def _reference_topk_block_mask(
    scores: torch.Tensor, n: int, block_size: int, top_k: int, window: int
) -> torch.Tensor:
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        row = scores[i // block_size]
        for b in row.topk(top_k).indices.tolist():
            if row[b] > -math.inf:
                mask[i, b * block_size : (b + 1) * block_size] = True
        mask[i, max(0, i - window) : i + 1] = True
    return mask


def check_block_scores(fn: Callable[..., Any]) -> bool:
    """Check ``fn(q, k, block_size)``: one head's block scores, as NSA's selection uses them.

    Keys are compressed to the mean of each complete block (``N // block_size`` blocks). Query
    ``i`` (in query block ``i // block_size``) takes a softmax of ``q_i . k_b / sqrt(d)`` over
    the blocks ``b`` that end before its query block starts; a query block's score of ``b``
    adds the probabilities of its queries. Blocks not before the query block score ``-inf``.

    Args:
        fn: takes ``q (N, d)``, ``k (N, d)`` and an int; returns ``(ceil(N / bs), N // bs)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-learned-sparse`.
    """
    _require_callable("fn", fn)

    def matches(n: int, d: int, block_size: int, seed: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            q, k = _randn(n, d, seed=seed), _randn(n, d, seed=seed + 1)
            args = {"q": q, "k": k, "block_size": block_size}
            want = _reference_block_scores(q, k, block_size).numpy()
            got = _array(_call(fn, {a: _copy(b) for a, b in args.items()}, prop), "it", prop, args)
            same_inf = got.shape == want.shape and bool(np.all(np.isinf(got) == np.isinf(want)))
            finite = np.isfinite(want)
            ok = same_inf and bool(np.allclose(got[finite], want[finite], atol=1e-6, rtol=1e-5))
            _expect(ok, prop, args, want, got)

        return check

    return _run(
        "block_scores",
        [
            matches(8, 2, 4, 0, "two blocks of 4: query block 1 can only choose block 0"),
            matches(12, 3, 4, 1, "three blocks: a query block sums its queries' probabilities"),
            matches(16, 4, 4, 2, "scores use the mean of each block's keys, scaled by sqrt(d)"),
            matches(14, 2, 4, 3, "N not a multiple: the 2 last keys form no block"),
            matches(20, 8, 5, 4, "d = 8: the logits are divided by sqrt(8)"),
        ],
    )


def check_topk_block_mask(fn: Callable[..., Any]) -> bool:
    """Check ``fn(scores, n, block_size, top_k, window)``: the dense mask of block selection.

    ``scores`` is ``(ceil(n / block_size), n // block_size)``, ``-inf`` for blocks a query
    block may not choose. Query ``i`` sees key ``j`` when ``i - window <= j <= i`` or when
    ``j`` lies in one of the ``top_k`` best-scoring blocks of query block ``i // block_size``
    (a ``-inf`` block is never chosen, even when fewer than ``top_k`` remain).

    Args:
        fn: returns a boolean ``(n, n)`` tensor, ``True`` where query ``i`` sees key ``j``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-learned-sparse`.
    """
    _require_callable("fn", fn)

    def matches(
        n: int, block_size: int, top_k: int, window: int, seed: int, prop: str
    ) -> Callable[[], None]:
        def check() -> None:
            nq, nb = -(-n // block_size), n // block_size
            scores = _randn(nq, nb, seed=seed)
            early = torch.arange(nb) >= torch.arange(nq)[:, None]
            scores = scores.masked_fill(early, -math.inf)
            args = {
                "scores": scores,
                "n": n,
                "block_size": block_size,
                "top_k": top_k,
                "window": window,
            }
            want = _reference_topk_block_mask(scores, n, block_size, top_k, window)
            got = _call(fn, {a: _copy(b) for a, b in args.items()}, prop)
            ok = isinstance(got, torch.Tensor) and got.shape == want.shape
            ok = ok and torch.equal(got.bool(), want)
            _expect(ok, prop, args, want.int(), got.int() if isinstance(got, torch.Tensor) else got)

        return check

    return _run(
        "topk_block_mask",
        [
            matches(8, 2, 1, 0, 0, "window 0: each query sees itself and its chosen block"),
            matches(8, 2, 1, 1, 1, "window 1: the query and the position before it"),
            matches(12, 3, 2, 2, 2, "two blocks of 3 chosen for each query block"),
            matches(12, 4, 2, 0, 3, "early query blocks have fewer blocks than top_k to choose"),
            matches(10, 4, 1, 2, 4, "n not a multiple of block_size"),
            matches(16, 2, 3, 3, 5, "eight blocks of 2, three chosen, window 3"),
        ],
    )
