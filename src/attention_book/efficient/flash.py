"""FlashAttention in plain PyTorch: tiles of queries and keys, merged by an online softmax."""

from __future__ import annotations

import math
from typing import Any, cast

import torch
from torch.autograd.function import once_differentiable

from .. import _validate
from ._common import (
    _block_pair,
    _check_causal,
    _check_qkv,
    _compute_dtype,
    _flat,
    _scale,
)
from .flash_backward import _BACKWARD_BLOCKS, _backward

__all__ = ["flash_attention", "flash_attention_with_lse", "merge_partial_attention"]

_LOG2_E = math.log2(math.e)  # exp(x) = 2^(x log2 e), the base-2 form of FlashAttention-2's kernels
_LN_2 = math.log(2.0)
_FORWARD_BLOCKS = (256, 1024)  # (block_q, block_k): the fastest forward measured on a CPU


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    block_size: int | tuple[int, int] | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Compute exact attention tile by tile, never holding an N x M matrix of scores.

    Queries are taken ``block_q`` rows at a time; for each block the keys are visited
    ``block_k`` at a time, and an online softmax keeps, per query, a shift ``m``, the running
    sum ``l = sum_j exp(s_j - m)`` and the running output ``sum_j exp(s_j - m) v_j``; the
    output is their ratio. With ``causal=True`` the keys that every query of a block may see
    are visited unmasked and the diagonal is one masked square tile; tiles above it are never
    computed.

    Three tricks keep each tile at two matrix products, one in-place exponential and one sum.
    The shift is folded into the score product as an extra feature,
    ``[q * scale, -m] . [k, 1] = s - m``. Scores are kept in base 2 (``exp(x) = 2^(x log2 e)``),
    as in FlashAttention-2's CUDA kernels, where the GPU's exponential instruction is base 2 and
    the scale and shift fuse into one multiply-add; on a CPU this buys no speed
    (``torch.exp2_`` is not faster than ``torch.exp_``), it only mirrors those kernels. And the
    shift starts at each query's score with key 0 and is raised, with the textbook rescaling of
    ``l`` and the output, only for a tile where the bound ``|q| max|k| - m`` says ``exp`` could
    overflow; any shift gives the same result as long as nothing overflows.

    It is differentiable: when gradients are enabled and ``q``, ``k`` or ``v`` requires one,
    the forward also keeps each query's log-sum-exp (:func:`flash_attention_with_lse`) and
    saves only the inputs, the output and that; the backward pass recomputes the weights tile
    by tile (:func:`~attention_book.efficient.flash_attention_backward`). Otherwise nothing
    is saved.

    Args:
        q: queries ``(..., N, d)``.
        k: keys ``(..., M, d)``, with the leading dims of ``q``.
        v: values ``(..., M, d_v)``.
        causal: query ``i`` sees keys ``j <= i + M - N`` only; needs ``N <= M``.
        block_size: rows of queries and of keys per tile, ``(block_q, block_k)``, or one int
            for both; each > 0. Memory per tile is ``batch * block_q * block_k`` scores
            (``batch * block_q**2`` for the diagonal tiles of causal attention). The backward
            pass uses the same tiles. ``None`` means ``(256, 1024)`` for the forward pass and
            ``(512, 256)`` for the backward, the fastest measured on a CPU.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.

    Returns:
        The output ``(..., N, d_v)``, equal to softmax attention up to rounding.

    Introduced in :ref:`sec-quadratic-wall`, explained in :ref:`sec-flash-attention`.
    """
    return _attention(q, k, v, causal, block_size, scale, with_lse=False)[0]


def flash_attention_with_lse(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    block_size: int | tuple[int, int] | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute exact tiled attention and, per query, the log-sum-exp of its scores.

    The same computation as :func:`flash_attention`, which already holds, per query, the
    shift ``m`` and the sum ``l = sum_j 2^(s_j - m)`` of its base-2 scores; the log-sum-exp
    is ``lse = (m + log2 l) ln 2 = log sum_j exp(scale q.k_j)`` over the keys the query sees.
    It is what the backward pass needs to recompute the weights, ``exp(scale q.k_j - lse)``,
    and what :func:`merge_partial_attention` merges. Both outputs are differentiable.

    Args:
        q: queries ``(..., N, d)``.
        k: keys ``(..., M, d)``, with the leading dims of ``q``.
        v: values ``(..., M, d_v)``.
        causal: query ``i`` sees keys ``j <= i + M - N`` only; needs ``N <= M``.
        block_size: rows of queries and of keys per tile, ``(block_q, block_k)``, or one int
            for both; each > 0; as in :func:`flash_attention`.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.

    Returns:
        ``(out, lse)``: the output ``(..., N, d_v)`` in the dtype of ``q``, and the natural
        log-sum-exp of the scaled scores ``(..., N)``, in float32 for half-precision inputs
        (as FlashAttention's kernels keep it) and in the dtype of ``q`` otherwise.

    Introduced in :ref:`sec-flash-backward`.
    """
    out, lse = _attention(q, k, v, causal, block_size, scale, with_lse=True)
    assert lse is not None
    return out, lse


def _attention(
    q: object,
    k: object,
    v: object,
    causal: object,
    block_size: object,
    scale: object,
    with_lse: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check the arguments; differentiate through :class:`_FlashAttention` only if needed."""
    q, k, v = _check_qkv(q, k, v)
    causal = _check_causal(causal, q.shape[-2], k.shape[-2])
    blocks = _block_pair(_FORWARD_BLOCKS if block_size is None else block_size)
    scale = _scale(scale, q.shape[-1])
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        backward_blocks = _BACKWARD_BLOCKS if block_size is None else blocks
        out, lse = _FlashAttention.apply(q, k, v, causal, blocks, backward_blocks, scale)
        return cast(torch.Tensor, out), cast(torch.Tensor, lse)
    return _forward(q, k, v, causal, *blocks, scale, with_lse=with_lse)


class _FlashAttention(torch.autograd.Function):
    """The tiled forward; its backward recomputes each tile (:func:`flash_attention_backward`).

    It saves ``q``, ``k``, ``v``, the output and the log-sum-exp: ``O(N d)`` memory, never a
    matrix of weights.
    """

    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        causal: bool,
        blocks: tuple[int, int],
        backward_blocks: tuple[int, int],
        scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, lse = _forward(q, k, v, causal, *blocks, scale, with_lse=True)
        assert lse is not None
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.options = (causal, *backward_blocks, scale)
        return out, lse

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_out: torch.Tensor, grad_lse: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        q, k, v, out, lse = ctx.saved_tensors
        causal, block_q, block_k, scale = ctx.options
        grads = _backward(grad_out, q, k, v, out, lse, grad_lse, causal, block_q, block_k, scale)
        wanted = ctx.needs_input_grad[:3]
        kept = tuple(g if w else None for g, w in zip(grads, wanted, strict=True))
        return (*kept, None, None, None, None)  # nothing for causal, the blocks and scale


def _forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    block_q: int,
    block_k: int,
    scale: float,
    with_lse: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The tiled forward on checked arguments; ``lse`` (natural log) only when ``with_lse``."""
    n, m, d_v = q.shape[-2], k.shape[-2], v.shape[-1]
    dtype = _compute_dtype(q.dtype)
    qf, kf, vf = (_flat(x).to(dtype) for x in (q, k, v))  # (BH, N, d), (BH, M, d), (BH, M, d_v)
    bh, offset = qf.shape[0], m - n  # query i sits at key position i + offset
    k_ext = torch.cat([kf, kf.new_ones(bh, m, 1)], dim=-1).transpose(1, 2)  # (BH, d + 1, M)
    k_norm = kf.norm(dim=-1)  # (BH, M)
    limit = math.log2(torch.finfo(dtype).max) / 3  # 2^(s - m) <= 2^limit: far from overflow
    out = qf.new_empty(bh, n, d_v)
    lse = qf.new_empty(bh, n) if with_lse else None
    buffer = qf.new_empty(bh * min(block_q, n) * min(max(block_k, block_q), m))  # one tile
    for i0 in range(0, n, block_q):
        i1 = min(i0 + block_q, n)
        qs = qf[:, i0:i1] * (scale * _LOG2_E)  # (BH, bq, d): scores in base 2, for exp2
        shift = (qs * kf[:, :1]).sum(-1)  # (BH, bq): the score with key 0, which all may see
        q_ext = torch.cat([qs, -shift[..., None]], dim=-1)  # (BH, bq, d + 1)
        q_norm = qs.norm(dim=-1)  # (BH, bq)
        total = qf.new_zeros(bh, i1 - i0)  # l: sum of 2^(s - m) over the keys so far
        acc = qf.new_zeros(bh, i1 - i0, d_v)  # sum of 2^(s - m) v over the keys so far
        for j0, j1, diagonal in _tiles(i0, i1, m, offset, block_k, causal):
            s = buffer[: bh * (i1 - i0) * (j1 - j0)].view(bh, i1 - i0, j1 - j0)
            torch.bmm(q_ext, k_ext[:, :, j0:j1], out=s)  # (BH, bq, bk): scores minus shift
            if diagonal:  # key j0 + c is in the future of query i0 + r when c > r
                future = torch.ones(i1 - i0, j1 - j0, dtype=torch.bool, device=s.device)
                s.masked_fill_(future.triu_(1), -math.inf)
            bound = q_norm * k_norm[:, j0:j1].amax(-1, keepdim=True) - shift  # (BH, bq)
            if float(bound.amax()) > limit:  # exp could overflow: the textbook rescaling step
                grow = s.amax(dim=-1).clamp_min(0)  # (BH, bq): raise the shift to the max
                s.sub_(grow[..., None])
                rescale = torch.exp2(-grow)
                total.mul_(rescale)
                acc.mul_(rescale[..., None])
                shift += grow
                q_ext[..., -1] = -shift
            s.exp2_()  # 2^(s - m) = exp((s - m) ln 2): the unnormalised weights
            total.add_(s.sum(dim=-1))
            acc.baddbmm_(s, vf[:, j0:j1])
        torch.div(acc, total[..., None], out=out[:, i0:i1])
        if lse is not None:  # log sum_j exp(s_j) = (m + log2 l) ln 2, with s in base 2
            lse[:, i0:i1] = (shift + total.log2()) * _LN_2
    out = out.reshape(*q.shape[:-1], d_v).to(q.dtype)
    return out, None if lse is None else lse.reshape(q.shape[:-1])


def _tiles(
    i0: int, i1: int, m: int, offset: int, block_k: int, causal: bool
) -> list[tuple[int, int, bool]]:
    """Key ranges ``(j0, j1, on_diagonal)`` that the queries ``i0 .. i1 - 1`` visit."""
    if not causal:
        return [(j, min(j + block_k, m), False) for j in range(0, m, block_k)]
    seen_by_all = i0 + offset  # keys j < i0 + offset are visible to every query of the block
    tiles = [(j, min(j + block_k, seen_by_all), False) for j in range(0, seen_by_all, block_k)]
    return [*tiles, (seen_by_all, i1 + offset, True)]  # the square on the diagonal


def merge_partial_attention(
    out_a: torch.Tensor, lse_a: torch.Tensor, out_b: torch.Tensor, lse_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine attention over two disjoint sets of keys into attention over their union.

    Each partial result is a normalised output and the log of its softmax denominator,
    ``lse = log sum_j exp(s_j)``. The union's weights are the partial ones rescaled by
    ``exp(lse_a - lse)`` and ``exp(lse_b - lse)`` with ``lse = logaddexp(lse_a, lse_b)``.
    A part with no keys has ``lse = -inf`` and drops out.

    Args:
        out_a: ``(..., N, d_v)``, attention of the queries over the first set of keys.
        lse_a: ``(..., N)``, its log-sum-exp of scores.
        out_b: ``(..., N, d_v)``, over the second set.
        lse_b: ``(..., N)``.

    Returns:
        ``(out, lse)`` over both sets, shapes ``(..., N, d_v)`` and ``(..., N)``.

    Introduced in :ref:`sec-flash-attention`.
    """
    for name, x in (("out_a", out_a), ("lse_a", lse_a), ("out_b", out_b), ("lse_b", lse_b)):
        _validate.tensor(name, x)
    if out_a.shape != out_b.shape or lse_a.shape != lse_b.shape or lse_a.shape != out_a.shape[:-1]:
        raise ValueError(
            "out_a and out_b must be (..., N, d_v) and lse_a, lse_b (..., N), got "
            f"{tuple(out_a.shape)}, {tuple(out_b.shape)}, {tuple(lse_a.shape)}, "
            f"{tuple(lse_b.shape)}"
        )
    lse = torch.logaddexp(lse_a, lse_b)
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))  # both parts empty
    w_a = torch.exp(lse_a - safe)[..., None]
    w_b = torch.exp(lse_b - safe)[..., None]
    return w_a * out_a + w_b * out_b, lse
