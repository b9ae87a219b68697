"""Checkers for chapter 4's MiniLM: embeddings, mean pooling (4.6), attention rollout (4.7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._harness import (
    _array,
    _call,
    _close,
    _expect,
    _randn,
    _require_callable,
    _run,
)

__all__ = ["check_attention_rollout", "check_bert_embeddings", "check_mean_pool"]


def _reference_bert_embeddings(
    ids: torch.Tensor,
    types: torch.Tensor,
    word: torch.Tensor,
    position: torch.Tensor,
    token_type: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
) -> np.ndarray:
    x = word[ids] + position[torch.arange(ids.shape[1])] + token_type[types]
    return torch.nn.functional.layer_norm(x, x.shape[-1:], gamma, beta, eps=1e-12).numpy()


def check_bert_embeddings(fn: Callable[..., Any]) -> bool:
    """Check ``fn(input_ids, token_type_ids, word, position, token_type, gamma, beta)``.

    BERT's input layer: ``LayerNorm(word[t_i] + position[i] + token_type[s_i])`` over the
    features, with LayerNorm's scale ``gamma``, shift ``beta`` and epsilon ``1e-12``.

    Args:
        fn: takes ``input_ids`` and ``token_type_ids`` ``(B, N)`` (long), the tables ``word``
            ``(V, d)``, ``position`` ``(max_len, d)`` and ``token_type`` ``(2, d)``, and
            ``gamma``, ``beta`` ``(d,)``; returns ``(B, N, d)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-pretrained`.
    """
    _require_callable("fn", fn)
    d, vocab, max_len = 8, 11, 9
    word, position = _randn(vocab, d, seed=20), _randn(max_len, d, seed=21)
    token_type = _randn(2, d, seed=22)
    gamma, beta = 1.0 + 0.1 * _randn(d, seed=23), 0.1 * _randn(d, seed=24)
    gen = torch.Generator().manual_seed(25)
    ids = torch.randint(0, vocab, (2, 5), generator=gen)
    zeros = torch.zeros_like(ids)

    def args_for(ids: torch.Tensor, types: torch.Tensor, **tables: torch.Tensor) -> dict[str, Any]:
        base = {"word": word, "position": position, "token_type": token_type}
        base |= tables
        return {"input_ids": ids, "token_type_ids": types, **base, "gamma": gamma, "beta": beta}

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, args, prop), "the output", prop, args)

    def matches(prop: str, args: dict[str, Any]) -> Callable[[], None]:
        def check() -> None:
            want = _reference_bert_embeddings(*args.values())
            out = run(args, prop)
            _expect(_close(out, want, 1e-6), prop, args, want, out)

        return check

    def shape() -> None:
        args = args_for(ids, zeros)
        prop = "output shape (B, N, d) = (2, 5, 8)"
        out = run(args, prop)
        _expect(out.shape == (2, 5, d), prop, args, "shape (2, 5, 8)", f"shape {out.shape}")

    def positions_count() -> None:
        same = torch.full((1, 4), 3)
        args = args_for(same, torch.zeros_like(same))
        prop = "position i adds row i of the position table: one token repeated differs by place"
        want = _reference_bert_embeddings(*args.values())
        out = run(args, prop)
        _expect(_close(out, want, 1e-6), prop, args, want, out)

    def tiny_variance() -> None:
        flat = torch.zeros(vocab, d, dtype=torch.float64)
        flat[:, 0] = 1e-5  # the features of every token differ by only 1e-5
        args = args_for(
            ids[:1, :3],
            zeros[:1, :3],
            word=flat,
            position=torch.zeros(max_len, d, dtype=torch.float64),
            token_type=torch.zeros(2, d, dtype=torch.float64),
        )
        prop = "LayerNorm's epsilon is 1e-12: features differing by 1e-5 still get unit variance"
        want = _reference_bert_embeddings(*args.values())
        out = run(args, prop)
        _expect(_close(out, want, 1e-4), prop, args, want, out)

    return _run(
        "bert_embeddings",
        [
            shape,
            matches(
                "word + position embeddings, then LayerNorm over the features", args_for(ids, zeros)
            ),
            positions_count,
            matches(
                "token_type_ids pick rows of the segment table (some tokens in segment 1)",
                args_for(ids, torch.tensor([[0, 0, 0, 1, 1], [0, 1, 1, 1, 1]])),
            ),
            tiny_variance,
        ],
    )


def check_mean_pool(fn: Callable[..., Any]) -> bool:
    """Check ``fn(hidden, attention_mask)``: the mean of each text's real token vectors.

    Args:
        fn: takes hidden states ``(B, N, d)`` and a boolean mask ``(B, N)``, True for real
            tokens; returns ``(B, d)``, ignoring the padding.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-pretrained`.
    """
    _require_callable("fn", fn)
    hidden = _randn(3, 4, 2, seed=30)
    full = torch.ones(3, 4, dtype=torch.bool)
    padded = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)

    def reference(h: torch.Tensor, m: torch.Tensor) -> np.ndarray:
        w = m.to(h.dtype).unsqueeze(-1)
        return ((h * w).sum(1) / w.sum(1)).numpy()

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, args, prop), "the output", prop, args)

    def matches(prop: str, h: torch.Tensor, m: torch.Tensor) -> Callable[[], None]:
        def check() -> None:
            args = {"hidden": h.clone(), "attention_mask": m.clone()}
            want = reference(h, m)
            out = run(args, prop)
            _expect(_close(out, want), prop, args, want, out)

        return check

    def shape() -> None:
        args = {"hidden": hidden.clone(), "attention_mask": full}
        prop = "output shape (B, d) = (3, 2): one vector per text"
        out = run(args, prop)
        _expect(out.shape == (3, 2), prop, args, "shape (3, 2)", f"shape {out.shape}")

    noisy = hidden.clone()
    noisy[~padded] = 1000.0  # what sits in the padding must not matter

    return _run(
        "mean_pool",
        [
            shape,
            matches("without padding: the plain mean over the tokens", hidden, full),
            matches("padding is left out: divide by the number of real tokens", hidden, padded),
            matches("the values in padded positions do not matter", noisy, padded),
        ],
    )


def _reference_rollout(weights: torch.Tensor) -> np.ndarray:
    maps = 0.5 * weights.mean(dim=-3) + 0.5 * torch.eye(weights.shape[-1], dtype=weights.dtype)
    maps = maps / maps.sum(-1, keepdim=True)
    rollout = maps[0]
    for layer_map in maps[1:]:
        rollout = layer_map @ rollout
    return rollout.numpy()


def check_attention_rollout(fn: Callable[..., Any]) -> bool:
    """Check ``fn(weights)``, attention rollout (Abnar & Zuidema, 2020).

    Average the heads of each layer, add the identity for the residual connection
    (``0.5 * A + 0.5 * I``, rows renormalised), and chain the layers,
    ``R = A_L @ ... @ A_1``.

    Args:
        fn: takes weights ``(L, H, N, N)``, first layer first, rows summing to one; returns
            the rollout ``(N, N)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-reading-attention`.
    """
    _require_callable("fn", fn)

    def weights(layers: int, heads: int, n: int, seed: int) -> torch.Tensor:
        return torch.softmax(2.0 * _randn(layers, heads, n, n, seed=seed), dim=-1)

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, args, prop), "the rollout", prop, args)

    def matches(prop: str, w: torch.Tensor) -> Callable[[], None]:
        def check() -> None:
            args = {"weights": w.clone()}
            want = _reference_rollout(w)
            out = run(args, prop)
            _expect(_close(out, want), prop, args, want, out)

        return check

    def shape_and_rows() -> None:
        args = {"weights": weights(3, 2, 4, seed=40)}
        prop = "output shape (N, N) = (4, 4), every row summing to one"
        out = run(args, prop)
        ok = out.shape == (4, 4) and bool(np.allclose(out.sum(-1), 1.0))
        _expect(
            ok, prop, args, "shape (4, 4), row sums 1", f"shape {out.shape}, rows {out.sum(-1)}"
        )

    return _run(
        "attention_rollout",
        [
            shape_and_rows,
            matches("one layer, one head: 0.5 * A + 0.5 * I", weights(1, 1, 3, seed=41)),
            matches("one layer, three heads: average the heads first", weights(1, 3, 3, seed=42)),
            matches(
                "two layers: R = A_2 @ A_1, the later layer on the left", weights(2, 1, 3, seed=43)
            ),
            matches("four layers, two heads, five tokens", weights(4, 2, 5, seed=44)),
        ],
    )
