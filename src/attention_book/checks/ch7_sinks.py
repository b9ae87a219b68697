"""Checkers for chapter 7's attention sinks (7.3): a sink cache's contents, the sink softmax."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ._harness import _array, _call, _close, _expect, _randn, _require_callable, _run

__all__ = ["check_sink_cache_keep", "check_softmax_with_sink"]


def _reference_sink_cache_keep(t: int, num_sinks: int, window: int) -> list[int]:
    return list(range(min(t, num_sinks))) + list(range(max(num_sinks, t - window), t))


def check_sink_cache_keep(fn: Callable[..., Any]) -> bool:
    """Check ``fn(t, num_sinks, window)``: the stream positions a sink cache holds after t tokens.

    Tokens ``0, 1, ..., t - 1`` went into a cache that keeps the first ``num_sinks`` tokens
    and the last ``window`` tokens, evicting the oldest other token whenever it holds more
    than ``num_sinks + window``. The function returns the positions it holds, in cache order
    (the sinks, then the window, each oldest first).

    Args:
        fn: takes ints ``t >= 0``, ``num_sinks >= 0`` and ``window >= 1``; returns a list of
            ints.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-attention-sinks`.
    """
    _require_callable("fn", fn)

    def matches(t: int, num_sinks: int, window: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"t": t, "num_sinks": num_sinks, "window": window}
            want = _reference_sink_cache_keep(t, num_sinks, window)
            got = _call(fn, args, prop)
            try:
                kept: Any = [int(p) for p in got]
            except (TypeError, ValueError):
                _expect(False, f"{prop}: return a list of ints", args, want, got)
            _expect(kept == want, prop, args, want, kept)

        return check

    return _run(
        "sink_cache_keep",
        [
            matches(0, 2, 3, "no tokens yet: the cache is empty"),
            matches(4, 2, 3, "before the cache fills, it holds every token once, in order"),
            matches(5, 2, 3, "exactly full (num_sinks + window tokens): nothing evicted"),
            matches(6, 2, 3, "one token too many: the oldest token after the sinks goes"),
            matches(20, 4, 6, "long after: the first num_sinks tokens, then the last window"),
            matches(10, 0, 3, "num_sinks = 0 is a rolling window of the last tokens"),
            matches(9, 3, 1, "window = 1: the sinks and the newest token"),
        ],
    )


def _reference_softmax_with_sink(
    scores: torch.Tensor, sink_logit: torch.Tensor | float
) -> torch.Tensor:
    sink = torch.as_tensor(sink_logit, dtype=scores.dtype).expand(*scores.shape[:-1], 1)
    return torch.softmax(torch.cat([scores, sink], dim=-1), dim=-1)[..., :-1]


def check_softmax_with_sink(fn: Callable[..., Any]) -> bool:
    """Check ``fn(scores, sink_logit)``: a softmax with one extra "nothing" column, dropped.

    ``w_j = exp(s_j) / (exp(sink_logit) + sum_k exp(s_k))`` over the last dim of ``scores``;
    ``sink_logit`` is a number or a tensor that broadcasts to ``scores.shape[:-1] + (1,)``
    (one logit per head: ``(H, 1, 1)`` for ``(B, H, N, M)`` scores).

    Args:
        fn: takes a tensor ``scores`` and a number or tensor ``sink_logit``; returns the
            weights, the shape of ``scores``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-attention-sinks`.
    """
    _require_callable("fn", fn)

    def matches(scores: torch.Tensor, sink: torch.Tensor | float, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {
                "scores": scores.clone(),
                "sink_logit": sink.clone() if isinstance(sink, torch.Tensor) else sink,
            }
            want = _reference_softmax_with_sink(scores, sink)
            got = _array(_call(fn, args, prop), "the weights", prop, args)
            if got.shape != tuple(want.shape):
                _expect(False, prop, args, f"shape {tuple(want.shape)}", f"shape {got.shape}")
            _expect(_close(got, want.numpy()), prop, args, want, got)

        return check

    two = torch.tensor([[0.0, math.log(2.0)]], dtype=torch.float64)
    masked = torch.tensor([[-math.inf, -math.inf, -math.inf], [0.0, 1.0, -math.inf]])
    return _run(
        "softmax_with_sink",
        [
            matches(two, 0.0, "sink logit 0: scores 0 and ln 2 get 1/4 and 2/4"),
            matches(two, math.log(3.0), "sink logit ln 3: exp(sink) joins the denominator"),
            matches(_randn(2, 5, seed=71), -math.inf, "sink logit -inf: the ordinary softmax"),
            matches(
                _randn(2, 3, 4, 5, seed=72),
                _randn(3, 1, 1, seed=73),
                "one sink logit per head, (H, 1, 1), for scores (B, H, N, M)",
            ),
            matches(1000 + _randn(3, 4, seed=74), 1000.5, "logits near 1000 overflow unshifted"),
            matches(masked.double(), 0.0, "a fully masked row (all -inf): zero weights, no NaN"),
        ],
    )
