"""Checkers for chapter 6's cheaper patterns: dilated windows (6.5), linear attention (6.6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ._harness import (
    _array,
    _call,
    _close,
    _copy,
    _expect,
    _Failure,
    _fmt,
    _randn,
    _require_callable,
    _run,
)

__all__ = ["check_causal_linear_attention", "check_dilated_window_mask"]


def check_dilated_window_mask(fn: Callable[..., Any]) -> bool:
    """Check ``fn(n, window, dilation)``: the causal mask of a dilated sliding window.

    Query ``i`` may see key ``j`` when ``j = i - t * dilation`` for ``t = 0 .. window - 1``.

    Args:
        fn: takes ints ``n``, ``window`` and ``dilation``, each > 0; returns a bool tensor
            ``(n, n)``, ``True`` where query ``i`` may attend to key ``j``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-sparse-attention`.
    """
    _require_callable("fn", fn)

    def matches(n: int, window: int, dilation: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"n": n, "window": window, "dilation": dilation}
            gap = torch.arange(n)[:, None] - torch.arange(n)[None, :]
            want = (gap >= 0) & (gap <= (window - 1) * dilation) & (gap % dilation == 0)
            out = _call(fn, args, prop)
            if not isinstance(out, torch.Tensor) or out.dtype != torch.bool:
                raise _Failure(f"{prop}\n   it returned {_fmt(out)}, expected a bool tensor")
            got = _array(out, "the mask", prop, args)
            _expect(
                got.shape == want.shape and bool((got == want.numpy()).all()), prop, args, want, out
            )

        return check

    return _run(
        "dilated_window_mask",
        [
            matches(6, 2, 1, "window 2, no gaps: each query sees itself and the key before"),
            matches(5, 1, 1, "window 1: only the diagonal"),
            matches(9, 3, 2, "window 3, dilation 2: keys i, i - 2, i - 4"),
            matches(10, 2, 4, "window 2, dilation 4: keys i and i - 4"),
            matches(4, 10, 1, "a window longer than the sequence: all of the past"),
        ],
    )


def check_causal_linear_attention(fn: Callable[..., Any]) -> bool:
    """Check ``fn(q, k, v, chunk_size)``: causal linear attention with ``phi = elu + 1``.

    Query ``i`` attends to keys ``j <= i`` with weights ``phi(q_i) . phi(k_j)``, normalised
    to sum to one; the sums are carried from chunk to chunk.

    Args:
        fn: takes ``q (..., N, d)``, ``k (..., N, d)``, ``v (..., N, d_v)`` and an int
            ``chunk_size`` > 0; returns ``(..., N, d_v)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-kernel-attention`.
    """
    _require_callable("fn", fn)

    def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        a = (nn.functional.elu(q) + 1) @ (nn.functional.elu(k) + 1).transpose(-2, -1)  # (..., N, N)
        a = a.tril()
        return (a @ v) / a.sum(-1, keepdim=True)

    def matches(n: int, chunk: int, seed: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            q, k, v = (
                _randn(2, n, 4, seed=seed),
                _randn(2, n, 4, seed=seed + 1),
                _randn(2, n, 3, seed=seed + 2),
            )
            args = {"q": q, "k": k, "v": v, "chunk_size": chunk}
            want = reference(q, k, v)
            got = _array(
                _call(fn, {name: _copy(x) for name, x in args.items()}, prop),
                "the output",
                prop,
                args,
            )
            _expect(_close(got, want.numpy()), prop, args, want, got)

        return check

    return _run(
        "causal_linear_attention",
        [
            matches(4, 4, 31, "one chunk: a masked product"),
            matches(8, 2, 34, "four chunks: carry the sums from the chunks before"),
            matches(7, 3, 37, "7 positions in chunks of 3: the last chunk is shorter"),
            matches(6, 1, 40, "chunk_size = 1: one position at a time"),
        ],
    )
