"""Sparse attention patterns computed blockwise: sliding windows, dilation and global tokens."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import _validate
from ._common import _check_qkv, _compute_dtype, _flat, _scale

__all__ = ["sliding_window_attention"]


def sliding_window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    causal: bool = True,
    block_size: int | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Let each query attend only to the keys within ``window`` positions of its own.

    With ``causal=True`` query ``i`` (at key position ``p = i + M - N``) sees keys
    ``p - window < j <= p``; otherwise ``|j - p| < window``. The work is done per block of
    ``block_size`` queries, against the one slab of keys that block can see, so time and
    memory grow as ``N * (block_size + window)``, not ``N * M``.

    Args:
        q: queries ``(..., N, d)``, with ``N <= M``.
        k: keys ``(..., M, d)``.
        v: values ``(..., M, d_v)``.
        window: how far a query sees, > 0; ``causal`` windows hold ``window`` keys.
        causal: see only the past (and the present).
        block_size: queries per block, > 0; ``None`` picks ``max(window // 2, 64)``.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.

    Returns:
        The output ``(..., N, d_v)``.

    Introduced in :ref:`sec-quadratic-wall`; built step by step in the page on sparse attention.
    """
    q, k, v = _check_qkv(q, k, v)
    n, m, d, d_v = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    window = _validate.positive_int("window", window)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if n > m:
        raise ValueError(f"sliding-window attention needs N <= M, got N={n}, M={m}")
    if block_size is None:
        block = max(window // 2, 64)
    else:
        block = _validate.positive_int("block_size", block_size)
    scale = _scale(scale, d)
    dtype = _compute_dtype(q.dtype)
    qf, kf, vf = (_flat(x).to(dtype) for x in (q, k, v))
    offset = m - n
    before = window - 1  # keys a query may see before its own position
    after = 0 if causal else window - 1
    n_blocks = -(-n // block)
    span = block + before + after  # keys seen by one block of queries
    # pad the keys so that block t's slab starts at padded index t * block
    left = before - offset  # key position of query 0 minus `before`, negated
    pad_left = max(left, 0)
    start0 = pad_left - left  # slab of block 0 starts here in the padded keys
    total = start0 + (n_blocks - 1) * block + span
    pad_right = max(total - (pad_left + m), 0)
    kp = F.pad(kf, (0, 0, pad_left, pad_right))  # (BH, pad_left + M + pad_right, d)
    vp = F.pad(vf, (0, 0, pad_left, pad_right))
    qp = F.pad(qf, (0, 0, 0, n_blocks * block - n))  # (BH, n_blocks * block, d)
    key_slabs = kp[:, start0:].unfold(1, span, block)[:, :n_blocks]  # (BH, nb, d, span)
    value_slabs = vp[:, start0:].unfold(1, span, block)[:, :n_blocks]  # (BH, nb, d_v, span)
    # which (query, key) pairs of a slab are allowed, and which keys are real (not padding)
    r = torch.arange(block, device=q.device)[:, None]
    c = torch.arange(span, device=q.device)[None, :]
    band = (c >= r) & (c <= r + before + after)  # (block, span)
    key_pos = (
        torch.arange(n_blocks, device=q.device)[:, None] * block
        + torch.arange(span, device=q.device)[None, :]
        + start0
        - pad_left
    )  # (nb, span): position of each slab key in the unpadded keys
    real = (key_pos >= 0) & (key_pos < m)
    mask = band[None] & real[:, None, :]  # (nb, block, span)
    out = qf.new_empty(qf.shape[0], n_blocks * block, d_v)
    group = max(1, (1 << 18) // (block * span))  # blocks per step: about 256K scores per head
    for g0 in range(0, n_blocks, group):
        g1 = min(g0 + group, n_blocks)
        qb = qp[:, g0 * block : g1 * block].unflatten(1, (g1 - g0, block))  # (BH, g, block, d)
        s = torch.matmul(qb, key_slabs[:, g0:g1]) * scale  # (BH, g, block, span)
        s.masked_fill_(~mask[g0:g1], -math.inf)
        weights = torch.softmax(s, dim=-1)
        o = torch.matmul(weights, value_slabs[:, g0:g1].transpose(-2, -1))  # (BH, g, block, d_v)
        out[:, g0 * block : g1 * block] = o.flatten(1, 2)
    return out[:, :n].reshape(*q.shape[:-1], d_v).to(q.dtype)
