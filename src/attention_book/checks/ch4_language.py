"""Checkers for chapter 4's models: sampling, induction heads (4.4), attention pooling (4.5)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._harness import (
    _array,
    _call,
    _close,
    _expect,
    _Failure,
    _pair,
    _randn,
    _require_callable,
    _run,
)

__all__ = ["check_attention_pooling", "check_prefix_matching_score", "check_temperature_sampling"]


def check_temperature_sampling(fn: Callable[..., Any]) -> bool:
    """Check ``fn(logits, temperature, generator)``, drawing one next token per row.

    The function should divide the logits by ``temperature``, turn them into probabilities
    with a softmax over the vocabulary (the last dimension) and draw one token per row with
    ``generator``; at temperature 0 it should return the most likely token.

    Args:
        fn: takes ``logits`` ``(B, V)``, a float ``temperature`` >= 0 and a
            ``torch.Generator``; returns ``(B,)`` long token ids.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-language-model`.
    """
    _require_callable("fn", fn)
    base = torch.tensor([[2.0, 1.0, 0.0, -1.0], [-1.0, 0.5, 0.0, 1.5]], dtype=torch.float64)
    rows = 6000
    logits = base.repeat_interleave(rows, dim=0)  # (2 * rows, 4): two distributions

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        out = _call(fn, args, prop)
        if not isinstance(out, torch.Tensor) or out.dtype != torch.long:
            got = f"{type(out).__name__} {getattr(out, 'dtype', '')}"
            raise _Failure(f"{prop}\n   it returned {got}, expected a torch.long tensor (B,)")
        return out.detach().cpu().numpy()

    def shape() -> None:
        args = {"logits": base, "temperature": 1.0, "generator": torch.Generator().manual_seed(0)}
        prop = "one token id per row: logits (2, 4) give a long tensor of shape (2,), ids 0..3"
        out = run(args, prop)
        ok = out.shape == (2,) and bool(((out >= 0) & (out < 4)).all())
        _expect(ok, prop, args, "shape (2,), values in 0..3", out)

    def greedy() -> None:
        args = {"logits": base, "temperature": 0.0, "generator": torch.Generator().manual_seed(0)}
        prop = "temperature 0 picks the most likely token of each row (no division by zero)"
        out = run(args, prop)
        _expect(out.tolist() == [0, 3], prop, args, [0, 3], out)

    def frequencies(temperature: float, prop: str) -> Callable[[], None]:
        def check() -> None:
            gen = torch.Generator().manual_seed(1)
            args = {"logits": logits, "temperature": temperature, "generator": gen}
            out = run(args, prop)
            want = torch.softmax(base / temperature, dim=-1).numpy()
            got = np.stack([np.bincount(out[i * rows : (i + 1) * rows], minlength=4)[:4] / rows
                            for i in range(2)])  # fmt: skip
            shown = {"logits": base, "temperature": temperature, "draws per row": rows}
            _expect(_close(got, want, atol=0.025), prop, shown, want, got)

        return check

    def seeded() -> None:
        prop = "the draws come from the generator given: the same seed gives the same tokens"
        args = {"logits": logits[::100], "temperature": 1.0}
        torch.manual_seed(123)  # a solution that ignores the generator sees two global seeds
        first = run({**args, "generator": torch.Generator().manual_seed(7)}, prop)
        torch.manual_seed(456)
        second = run({**args, "generator": torch.Generator().manual_seed(7)}, prop)
        _expect(bool((first == second).all()), prop, args, first[:12], second[:12])

    return _run(
        "sample_next",
        [
            shape,
            greedy,
            frequencies(1.0, "temperature 1 draws each token with its softmax probability"),
            frequencies(0.5, "temperature 0.5 sharpens: softmax(logits / 0.5), per row"),
            frequencies(3.0, "temperature 3 flattens: softmax(logits / 3), per row"),
            seeded,
        ],
    )


def _induction_weights(period: int, heads: int, seed: int) -> torch.Tensor:
    """Random causal attention weights (heads, 2 * period + 1, 2 * period + 1), rows sum to 1."""
    n = 2 * period + 1
    scores = _randn(heads, n, n, seed=seed) * 2
    scores = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), -math.inf)
    return torch.softmax(scores, dim=-1)


def _reference_prefix_matching(weights: torch.Tensor, period: int) -> torch.Tensor:
    queries = torch.arange(period + 1, 2 * period + 1)
    return weights[..., queries, queries - period + 1].mean(-1)


def check_prefix_matching_score(fn: Callable[..., Any]) -> bool:
    """Check ``fn(weights, period)``, the prefix-matching score of attention heads.

    The sequence is ``BOS, x_1 .. x_L, x_1 .. x_L`` with ``L = period``, so ``N = 2L + 1``.
    The score is the mean, over the queries of the second copy (positions ``L + 1 .. 2L``),
    of the weight each puts on the token just after the earlier copy of its own token,
    at position ``q - L + 1``.

    Args:
        fn: takes ``weights`` ``(..., N, N)`` and the int ``period``; returns ``(...)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-language-model`.
    """
    _require_callable("fn", fn)

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, args, prop), "the score", prop, args)

    def hand_built() -> None:
        period, n = 3, 7
        induction, duplicate, previous = (torch.zeros(n, n, dtype=torch.float64) for _ in "abc")
        for q in range(n):
            induction[q, q - period + 1 if q > period else 0] = 1.0
            duplicate[q, q - period if q > period else 0] = 1.0
            previous[q, max(q - 1, 0)] = 1.0
        weights = torch.stack([induction, duplicate, previous])  # (3, 7, 7)
        args = {"weights": weights, "period": period}
        prop = (
            "hand-built heads (induction, attend to the earlier copy itself, previous token) "
            "score 1, 0, 0"
        )
        out = run(args, prop)
        _expect(_close(out, np.array([1.0, 0.0, 0.0])), prop, args, [1.0, 0.0, 0.0], out)

    def matches(shape: tuple[int, ...], period: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            heads = int(np.prod(shape))
            weights = _induction_weights(period, heads, seed=20 + period)
            weights = weights.reshape(*shape, *weights.shape[-2:])
            args = {"weights": weights, "period": period}
            want = _reference_prefix_matching(weights, period).numpy()
            out = run(args, prop)
            _expect(_close(out, want), prop, args, want, out)

        return check

    return _run(
        "prefix_matching_score",
        [
            hand_built,
            matches((4,), 5, "random causal weights of 4 heads, period 5: one score per head"),
            matches((2, 3), 4, "leading dimensions are kept: (2, 3, 9, 9) -> (2, 3)"),
            matches((2,), 1, "period 1: the stripe is the diagonal, at the query itself"),
        ],
    )


def _reference_pooling(
    states: torch.Tensor, query: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    scores = states @ query / math.sqrt(states.shape[-1])
    weights = torch.softmax(scores.masked_fill(~mask, -math.inf), dim=-1)
    return (weights.unsqueeze(1) @ states).squeeze(1), weights


def check_attention_pooling(fn: Callable[..., Any]) -> bool:
    """Check ``fn(states, query, mask) -> (pooled, weights)``, attention pooling.

    Every token state is scored by its dot product with one query, scaled by
    ``1 / sqrt(d)``; a softmax over the real tokens (``mask`` True) gives the weights, zero
    on padding, and the pooled vector is the weighted sum of the states.

    Args:
        fn: takes ``states`` ``(B, N, d)``, ``query`` ``(d,)`` and a boolean ``mask``
            ``(B, N)``; returns ``pooled`` ``(B, d)`` and ``weights`` ``(B, N)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-applications`.
    """
    _require_callable("fn", fn)
    states, query = _randn(3, 5, 4, seed=30), _randn(4, seed=31) * 2
    full = torch.ones(3, 5, dtype=torch.bool)
    padded = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4])

    def run(args: dict[str, Any], prop: str) -> tuple[np.ndarray, np.ndarray]:
        return _pair(fn, args, prop, ("pooled", "weights"))

    def shapes() -> None:
        args = {"states": states, "query": query, "mask": full}
        prop = "shapes: pooled (B, d) = (3, 4) and weights (B, N) = (3, 5)"
        pooled, weights = run(args, prop)
        got = f"pooled {pooled.shape}, weights {weights.shape}"
        ok = pooled.shape == (3, 4) and weights.shape == (3, 5)
        _expect(ok, prop, args, "pooled (3, 4), weights (3, 5)", got)

    def matches(mask: torch.Tensor, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"states": states, "query": query, "mask": mask}
            want_pooled, want_weights = _reference_pooling(states, query, mask)
            pooled, weights = run(args, prop)
            _expect(_close(weights, want_weights.numpy()), prop, args, want_weights, weights)
            _expect(_close(pooled, want_pooled.numpy()), prop, args, want_pooled, pooled)

        return check

    def sums_to_one() -> None:
        args = {"states": states, "query": query, "mask": padded}
        prop = "each sentence's weights sum to one over its real tokens and are 0 on padding"
        _, weights = run(args, prop)
        ok = np.allclose(weights.sum(-1), 1.0) and np.allclose(weights[~padded.numpy()], 0.0)
        _expect(ok, prop, args, "rows summing to 1, zeros where mask is False", weights)

    return _run(
        "attention_pool",
        [
            shapes,
            sums_to_one,
            matches(full, "weights = softmax(states @ query / sqrt(d)) over the tokens"),
            matches(padded, "padding (mask False) gets weight 0 and changes nothing else"),
        ],
    )
