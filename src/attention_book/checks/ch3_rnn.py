"""Checkers for chapter 3: the additive score, a decoder step (3.2), path length (3.4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ._harness import (
    _array,
    _call,
    _close,
    _expect,
    _Failure,
    _randn,
    _require_callable,
    _run,
)

__all__ = ["check_additive_score", "check_attention_decoder_step", "check_max_path_length"]


def check_additive_score(fn: Callable[..., Any]) -> bool:
    """Check ``fn(query, keys, W_q, W_k, w)``, Bahdanau's additive score.

    The score of query ``i`` and key ``j`` is ``w^T tanh(W_q q_i + W_k k_j)``.

    Args:
        fn: takes queries ``(..., N, d_q)``, keys ``(..., M, d_k)``, ``W_q`` ``(d_a, d_q)``,
            ``W_k`` ``(d_a, d_k)`` and ``w`` ``(d_a,)``; returns the scores ``(..., N, M)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-bahdanau-luong`.
    """
    from ..attention import AdditiveAttention

    _require_callable("fn", fn)

    def reference(
        q: torch.Tensor, k: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor, w: torch.Tensor
    ) -> np.ndarray:
        module = AdditiveAttention(q.shape[-1], k.shape[-1], len(w)).double()
        with torch.no_grad():
            module.query_proj.weight.copy_(w_q)
            module.key_proj.weight.copy_(w_k)
            module.score_proj.weight.copy_(w[None, :])
            scores: np.ndarray = module.scores(q, k).numpy()
        return scores

    def case(
        shape_q: tuple[int, ...],
        shape_k: tuple[int, ...],
        hidden: int,
        seed: int,
        scale: float = 1.0,
    ) -> dict[str, Any]:
        return {
            "query": _randn(*shape_q, seed=seed) * scale,
            "keys": _randn(*shape_k, seed=seed + 1) * scale,
            "W_q": _randn(hidden, shape_q[-1], seed=seed + 2),
            "W_k": _randn(hidden, shape_k[-1], seed=seed + 3),
            "w": _randn(hidden, seed=seed + 4),
        }

    def matches(prop: str, args: dict[str, Any]) -> Callable[[], None]:
        def check() -> None:
            want = reference(*args.values())
            out = _array(_call(fn, args, prop), "the scores", prop, args)
            if out.shape != want.shape:
                _expect(False, prop, args, f"shape {want.shape}", f"shape {out.shape}")
            _expect(_close(out, want), prop, args, want, out)

        return check

    def shape() -> None:
        args = case((3, 4), (5, 4), 6, seed=20)
        prop = "shape: one score per (query, key) pair, (N, M) = (3, 5)"
        out = _array(_call(fn, args, prop), "the scores", prop, args)
        _expect(out.shape == (3, 5), prop, args, "shape (3, 5)", f"shape {out.shape}")

    return _run(
        "additive_score",
        [
            shape,
            matches(
                "scores equal w^T tanh(W_q q_i + W_k k_j) for 3 queries and 5 keys",
                case((3, 4), (5, 4), 6, seed=20),
            ),
            matches(
                "queries and keys of different sizes: d_q = 2, d_k = 7, h = 3",
                case((3, 2), (5, 7), 3, seed=30),
            ),
            matches(
                "large inputs saturate: tanh keeps every hidden unit in [-1, 1]",
                case((2, 3), (4, 3), 5, seed=40, scale=10.0),
            ),
            matches(
                "batch dimensions in front: queries (2, 3, N, d), keys (2, 3, M, d)",
                case((2, 3, 4, 5), (2, 3, 6, 5), 4, seed=50),
            ),
        ],
    )


def check_attention_decoder_step(fn: Callable[..., Any]) -> bool:
    """Check ``fn(cell, attention, embedded, hidden, encoder_outputs, mask)``, one decoder step.

    The step updates the state with the GRU cell, then lets the *new* state attend to the
    encoder states, with the padding masked, and returns the weighted average as the context.
    The reference is :func:`attention_book.models.seq2seq.attention_step`.

    Args:
        fn: takes an ``nn.GRUCell``, a score module with ``scores(query (B, 1, d),
            keys (B, S, d_enc)) -> (B, 1, S)``, the embedded previous token ``(B, E)``, the
            previous state ``(B, d)``, the encoder states ``(B, S, d_enc)`` and a boolean mask
            ``(B, S)`` (True = real token); returns ``(new_hidden (B, d), context (B, d_enc),
            weights (B, S))``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-bahdanau-luong`.
    """
    from ..attention import AdditiveAttention, BilinearAttention
    from ..models.seq2seq import attention_step

    _require_callable("fn", fn)
    embed, d = 3, 4
    torch.manual_seed(0)
    cell = nn.GRUCell(embed, d).double()
    modules = {
        "additive": AdditiveAttention(d, d, 5).double(),
        "multiplicative": BilinearAttention(d, d).double(),
    }
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])

    def run(args: dict[str, Any], prop: str) -> tuple[np.ndarray, ...]:
        out = _call(fn, args, prop)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise _Failure(
                f"{prop}\n   it returned {type(out).__name__}, expected a triple "
                "(new_hidden, context, weights)"
            )
        names = ("new_hidden", "context", "weights")
        return tuple(_array(x, name, prop, args) for x, name in zip(out, names, strict=True))

    def inputs(kind: str, seed: int) -> dict[str, Any]:
        return {
            "cell": cell,
            "attention": modules[kind],
            "embedded": _randn(2, embed, seed=seed),
            "hidden": _randn(2, d, seed=seed + 1),
            "encoder_outputs": _randn(2, 5, d, seed=seed + 2),
            "mask": mask,
        }

    def want(args: dict[str, Any]) -> tuple[np.ndarray, ...]:
        with torch.no_grad():
            return tuple(x.numpy() for x in attention_step(*args.values()))

    def shapes() -> None:
        args = inputs("additive", 60)
        prop = "shapes: new_hidden (B, d) = (2, 4), context (B, d_enc) = (2, 4), weights (2, 5)"
        got = tuple(x.shape for x in run(args, prop))
        _expect(got == ((2, 4), (2, 4), (2, 5)), prop, args, ((2, 4), (2, 4), (2, 5)), got)

    def weights_ok() -> None:
        args = inputs("additive", 70)
        prop = "padding gets weight 0 and each row's weights sum to one over the source"
        weights = run(args, prop)[2]
        ok = np.allclose(weights.sum(-1), 1.0) and np.allclose(weights[1, 3:], 0.0)
        _expect(ok, prop, args, "row sums [1, 1] and weights[1, 3:] = [0, 0]", weights)

    def part(index: int, kind: str, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = inputs(kind, 80 + 10 * index)
            expected = want(args)[index]
            got = run(args, prop)[index]
            _expect(_close(got, expected), prop, args, expected, got)

        return check

    return _run(
        "attention_decoder_step",
        [
            shapes,
            weights_ok,
            part(0, "additive", "new_hidden: the GRU cell applied to (embedded, hidden)"),
            part(2, "additive", "weights: the softmax of the scores of the NEW hidden state"),
            part(1, "additive", "context: the weighted average of the encoder states"),
            part(2, "multiplicative", "works with a multiplicative (bilinear) score as well"),
        ],
    )


def _connectivity(n: int, kind: str) -> torch.Tensor:
    """One layer's connectivity (n, n): True where output i reads input j directly."""
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    if kind == "recurrent step":
        return (j == i) | (j == i - 1)
    if kind == "causal convolution, kernel 3":
        return (j <= i) & (j >= i - 2)
    if kind == "causal attention":
        return j <= i
    if kind == "attention":
        return torch.ones(n, n, dtype=torch.bool)
    if kind == "window of 1 with a global token 0":
        return ((i - j).abs() <= 1) | (i == 0) | (j == 0)
    return i == j  # "identity"


def check_max_path_length(fn: Callable[..., Any]) -> bool:
    """Check ``fn(reach)``, the maximum path length of a stack of layers.

    ``reach`` is one layer's connectivity, a boolean ``(N, N)`` tensor, True where output
    ``i`` reads input ``j`` directly, with a True diagonal. The function returns, over the
    pairs ``i != j`` that some number of stacked layers connects, the largest of the fewest
    layers that connect them, and 0 when no such pair exists.

    Args:
        fn: takes ``reach``; returns an int.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-parallelism`.
    """
    _require_callable("fn", fn)

    def matches(n: int, kind: str, want: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            reach = _connectivity(n, kind)
            args = {"reach": reach}
            full = f"{kind}, N = {n}: {prop}"
            out = _call(fn, {"reach": reach.clone()}, full)
            try:
                got: Any = int(out)
            except (TypeError, ValueError, RuntimeError):
                got = out
            _expect(got == want and not isinstance(out, bool), full, args, want, got)

        return check

    return _run(
        "max_path_length",
        [
            matches(8, "attention", 1, "one layer connects every pair"),
            matches(8, "causal attention", 1, "one layer; pairs j > i are never connected"),
            matches(8, "recurrent step", 7, "one hop per step: N - 1 from the first to the last"),
            matches(9, "causal convolution, kernel 3", 4, "ceil((N - 1) / (k - 1)) layers"),
            matches(
                8,
                "window of 1 with a global token 0",
                2,
                "the longest path need not start at the first position: 2 hops via token 0",
            ),
            matches(5, "identity", 0, "no pair i != j is ever connected: 0"),
            matches(2, "recurrent step", 1, "two positions, one hop"),
        ],
    )
