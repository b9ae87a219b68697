"""Checkers for chapter 7's multi-head latent attention (7.1): fold W_UK into the query."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._harness import _array, _call, _close, _expect, _randn, _require_callable, _run

__all__ = ["check_absorbed_query"]


def _reference_absorbed_query(q_c: torch.Tensor, w_uk: torch.Tensor, d_rope: int) -> torch.Tensor:
    h, dh = q_c.shape[1], q_c.shape[-1]
    w = w_uk.view(h, dh, w_uk.shape[-1])  # head i: rows i*dh .. (i+1)*dh of W_UK
    return q_c @ w / math.sqrt(dh + d_rope)  # (B, H, N, d_latent)


def check_absorbed_query(fn: Callable[..., Any]) -> bool:
    """Check ``fn(q_c, w_uk, d_rope)``: each head's content query, moved into latent space.

    ``q_c`` is ``(B, H, N, d_head)``, the content queries of ``H`` heads; ``w_uk`` is
    ``(H * d_head, d_latent)``, the up-projection ``k_C = W_UK c`` whose rows
    ``i * d_head .. (i + 1) * d_head`` make head ``i``'s keys. The result ``(B, H, N,
    d_latent)`` holds ``W_UK,i^T q_C,i / sqrt(d_head + d_rope)``: its dot product with a cached
    latent ``c`` is head ``i``'s scaled content score ``q_C,i . k_C,i / sqrt(d_head + d_rope)``.

    Args:
        fn: takes ``q_c``, ``w_uk`` and an int ``d_rope``; returns a tensor.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-latent-attention`.
    """
    _require_callable("fn", fn)

    def case(
        heads: int, d_head: int, d_latent: int, d_rope: int, lead: tuple[int, int], seed: int
    ) -> tuple[dict[str, Any], torch.Tensor]:
        q_c = _randn(lead[0], heads, lead[1], d_head, seed=seed)
        w_uk = _randn(heads * d_head, d_latent, seed=seed + 1)
        args = {"q_c": q_c, "w_uk": w_uk, "d_rope": d_rope}
        return args, _reference_absorbed_query(q_c, w_uk, d_rope)

    def result(args: dict[str, Any], prop: str) -> np.ndarray:
        copied = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in args.items()}
        return _array(_call(fn, copied, prop), "the result", prop, args)

    def shape() -> None:
        prop = "the result is (B, H, N, d_latent): one latent-space query per head and position"
        args, want = case(3, 2, 5, 2, (2, 4), seed=71)
        got = result(args, prop)
        ok = got.shape == tuple(want.shape)
        _expect(ok, prop, args, f"shape {tuple(want.shape)}", f"shape {got.shape}")

    def direction() -> None:
        prop = "one head: the query is W_UK^T q_C, a vector of the latent space (up to a scale)"
        args, want = case(1, 3, 4, 2, (1, 2), seed=72)
        got = result(args, prop)
        flat = want.numpy().ravel()
        factor = float(got.ravel() @ flat / (flat @ flat)) if got.size == flat.size else 0.0
        ok = got.shape == tuple(want.shape) and factor > 0
        _expect(ok and _close(got, factor * want.numpy()), prop, args, want, got)

    def scaled() -> None:
        prop = (
            "scores with the latents are q_C . k_C / sqrt(d_head + d_rope): the rotary part "
            "counts in the scale"
        )
        args, want = case(1, 4, 3, 6, (1, 3), seed=73)
        got = result(args, prop)
        _expect(_close(got, want.numpy()), prop, args, want, got)

    def heads() -> None:
        prop = "four heads: head i uses rows i * d_head to (i + 1) * d_head of W_UK"
        args, want = case(4, 2, 3, 2, (1, 2), seed=74)
        got = result(args, prop)
        _expect(_close(got, want.numpy()), prop, args, want, got)

    def scores() -> None:
        prop = "a batch of 2, 8 heads, 5 positions: the scores match the expanded keys"
        args, want = case(8, 4, 16, 2, (2, 5), seed=75)
        got = result(args, prop)
        latents = _randn(2, 7, 16, seed=76)  # (B, M, d_latent): a cache of 7 positions
        keys = (latents @ args["w_uk"].T).view(2, 7, 8, 4).transpose(1, 2)  # (B, H, M, dh)
        expanded = args["q_c"] @ keys.transpose(-2, -1) / math.sqrt(4 + 2)  # (B, H, N, M)
        if got.shape != tuple(want.shape):
            _expect(False, prop, args, f"shape {tuple(want.shape)}", f"shape {got.shape}")
        latent_scores = torch.from_numpy(got) @ latents[:, None].transpose(-2, -1)
        ok = _close(latent_scores.numpy(), expanded.numpy())
        _expect(ok, prop, args, expanded, latent_scores)  # the scores, expanded and latent

    return _run("absorbed_query", [shape, direction, scaled, heads, scores])
