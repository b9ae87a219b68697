"""Sparse attention patterns computed blockwise: sliding windows, dilation and global tokens."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .. import _validate
from ._common import _attention_with_lse, _check_qkv, _compute_dtype, _flat, _scale
from .flash import merge_partial_attention

__all__ = ["sliding_window_attention", "sparse_attention_mask"]


def sliding_window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    causal: bool = True,
    block_size: int | None = None,
    scale: float | None = None,
    *,
    dilation: int = 1,
    global_tokens: Sequence[int] | torch.Tensor | None = None,
) -> torch.Tensor:
    """Let each query attend only to the keys within ``window`` steps of its own position.

    With ``causal=True`` query ``i`` (at key position ``p = i + M - N``) sees the ``window``
    keys ``p, p - r, ..., p - (window - 1) r``, where ``r`` is the ``dilation``; otherwise it
    also sees the ``window - 1`` keys ``p + r, p + 2r, ...`` after it. The work is done per
    block of ``block_size`` queries, against the one slab of keys that block can see, so time
    and memory grow as ``N * (block_size + window)``, not ``N * M``. A dilated window is a plain
    window over each of the ``r`` interleaved subsequences ``x[c::r]``, and is computed as one.

    ``global_tokens`` (Longformer's global attention) are positions that every query sees and
    that see every key (within the causal limit): their keys are one extra dense block of
    ``N x len(global_tokens)`` scores, merged into the local result with the online softmax,
    and their queries are one dense block of ``len(global_tokens) x M`` scores.

    Args:
        q: queries ``(..., N, d)``, with ``N <= M`` (``N == M`` when ``dilation > 1``).
        k: keys ``(..., M, d)``.
        v: values ``(..., M, d_v)``.
        window: how many steps a query sees in each direction, > 0, counting its own position.
        causal: see only the past (and the present).
        block_size: queries per block, > 0; ``None`` picks ``max(window // 2, 64)``.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.
        dilation: gap between the keys of a window, > 0 (1: contiguous).
        global_tokens: key positions in ``[0, M)`` that attend and are attended globally.

    Returns:
        The output ``(..., N, d_v)``, equal to dense attention masked with
        :func:`sparse_attention_mask`.

    Introduced in :ref:`sec-quadratic-wall`, explained in :ref:`sec-sparse-attention`.
    """
    q, k, v = _check_qkv(q, k, v)
    n, m, d, d_v = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    window, causal, dilation = _check_pattern(window, causal, dilation)
    if n > m:
        raise ValueError(f"sliding-window attention needs N <= M, got N={n}, M={m}")
    if dilation > 1 and n != m:
        raise ValueError(f"a dilated window needs N == M, got N={n}, M={m}")
    block = (
        max(window // 2, 64)
        if block_size is None
        else _validate.positive_int("block_size", block_size)
    )
    globals_ = _global_positions(global_tokens, m, q.device)
    scale = _scale(scale, d)
    dtype = _compute_dtype(q.dtype)
    qf, kf, vf = (_flat(x).to(dtype) for x in (q, k, v))
    if dilation == 1:
        out, lse = _window(qf, kf, vf, window, causal, block, scale)
    else:  # each residue class c, c + r, c + 2r, ... is a contiguous window of its own
        out, lse = qf.new_empty(qf.shape[0], n, d_v), qf.new_empty(qf.shape[0], n)
        for c in range(dilation):
            part = slice(c, None, dilation)
            out[:, part], lse[:, part] = _window(
                qf[:, part], kf[:, part], vf[:, part], window, causal, block, scale
            )
    if globals_ is not None:
        out = _add_global(qf, kf, vf, out, lse, globals_, window, causal, dilation, scale)
    return out.reshape(*q.shape[:-1], d_v).to(q.dtype)


def sparse_attention_mask(
    n: int,
    window: int,
    causal: bool = True,
    *,
    dilation: int = 1,
    global_tokens: Sequence[int] | torch.Tensor | None = None,
    m: int | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Build the dense mask of the pattern :func:`sliding_window_attention` computes.

    For pictures, for small models and for tests: the point of the blockwise function is not
    to build this ``N x M`` matrix.

    Args:
        n: number of queries, > 0.
        window: how many steps a query sees in each direction, > 0.
        causal: see only the past (and the present).
        dilation: gap between the keys of a window, > 0.
        global_tokens: key positions that attend and are attended globally.
        m: number of keys, ``>= n``; ``None`` means ``n``. Queries are the last ``n`` positions.
        device: where to build the mask.

    Returns:
        A bool tensor ``(n, m)``, ``True`` where query ``i`` may attend to key ``j``.

    Introduced in :ref:`sec-sparse-attention`.
    """
    n = _validate.positive_int("n", n)
    m = n if m is None else _validate.positive_int("m", m)
    if m < n:
        raise ValueError(
            f"m must be >= n (queries are the last n of m positions), got n={n}, m={m}"
        )
    window, causal, dilation = _check_pattern(window, causal, dilation)
    p = torch.arange(m - n, m, device=device)[:, None]  # (n, 1): positions of the queries
    j = torch.arange(m, device=device)[None, :]  # (1, m)
    allowed = _in_window(p - j, window, causal, dilation)
    globals_ = _global_positions(global_tokens, m, device)
    if globals_ is not None:
        is_global = torch.zeros(m, dtype=torch.bool, device=device)
        is_global[globals_] = True
        visible = j <= p if causal else torch.ones_like(allowed)
        allowed |= (is_global[None, :] | is_global[m - n :, None]) & visible
    return allowed


def _check_pattern(window: object, causal: object, dilation: object) -> tuple[int, bool, int]:
    """Validate the arguments that describe a pattern, for both public functions."""
    window = _validate.positive_int("window", window)
    dilation = _validate.positive_int("dilation", dilation)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    return window, causal, dilation


def _in_window(gap: torch.Tensor, window: int, causal: bool, dilation: int) -> torch.Tensor:
    """Which query-minus-key position gaps a (dilated) window lets through."""
    reach = (window - 1) * dilation
    inside = (gap <= reach) & (gap >= (0 if causal else -reach))
    return inside & (gap % dilation == 0)


def _global_positions(
    tokens: Sequence[int] | torch.Tensor | None, m: int, device: torch.device | None
) -> torch.Tensor | None:
    if tokens is None:
        return None
    positions = torch.as_tensor(tokens, device=device)
    if positions.ndim != 1 or positions.dtype.is_floating_point or positions.dtype == torch.bool:
        raise TypeError(f"global_tokens must be a 1-D sequence of int positions, got {tokens!r}")
    if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= m):
        raise ValueError(f"global_tokens must be positions in [0, M={m}), got {positions.tolist()}")
    if positions.unique().numel() != positions.numel():
        raise ValueError(f"global_tokens must not repeat a position, got {positions.tolist()}")
    return positions.long() if positions.numel() else None


def _add_global(
    qf: torch.Tensor,
    kf: torch.Tensor,
    vf: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    globals_: torch.Tensor,
    window: int,
    causal: bool,
    dilation: int,
    scale: float,
) -> torch.Tensor:
    """Merge the global keys into every row, and give the global queries full attention."""
    n, m = qf.shape[-2], kf.shape[-2]
    p = torch.arange(m - n, m, device=qf.device)[:, None]  # (N, 1)
    gap = p - globals_[None, :]  # (N, G)
    new = ~_in_window(gap, window, causal, dilation)  # the local part has these already
    if causal:
        new &= gap >= 0
    part, part_lse = _attention_with_lse(qf, kf[:, globals_], vf[:, globals_], scale, new)
    out, _ = merge_partial_attention(out, lse, part, part_lse)
    rows = globals_[globals_ >= m - n] - (m - n)  # global positions that are also queries
    if rows.numel():
        seen = (
            (torch.arange(m, device=qf.device)[None, :] <= rows[:, None] + m - n)
            if causal
            else None
        )
        out[:, rows], _ = _attention_with_lse(qf[:, rows], kf, vf, scale, seen)
    return out


def _window(
    qf: torch.Tensor,
    kf: torch.Tensor,
    vf: torch.Tensor,
    window: int,
    causal: bool,
    block: int,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blockwise sliding window over ``(BH, N, d)`` inputs: the output and its log-sum-exp."""
    n, m, d_v = qf.shape[-2], kf.shape[-2], vf.shape[-1]
    offset = m - n
    before = window - 1  # keys a query may see before its own position
    after = 0 if causal else window - 1
    n_blocks = -(-n // block)
    span = block + before + after  # keys seen by one block of queries
    # pad the keys so that block t's slab starts at padded index t * block
    left = before - offset  # key position of query 0 minus `before`, negated
    pad_left = max(left, 0)
    start0 = pad_left - left  # slab of block 0 starts here in the padded keys
    padded_len = start0 + (n_blocks - 1) * block + span
    pad_right = max(padded_len - (pad_left + m), 0)
    kp = F.pad(kf, (0, 0, pad_left, pad_right))  # (BH, pad_left + M + pad_right, d)
    vp = F.pad(vf, (0, 0, pad_left, pad_right))
    qp = F.pad(qf, (0, 0, 0, n_blocks * block - n))  # (BH, n_blocks * block, d)
    key_slabs = kp[:, start0:].unfold(1, span, block)[:, :n_blocks]  # (BH, nb, d, span)
    value_slabs = vp[:, start0:].unfold(1, span, block)[:, :n_blocks]  # (BH, nb, d_v, span)
    # which (query, key) pairs of a slab are allowed, and which keys are real (not padding)
    r = torch.arange(block, device=qf.device)[:, None]
    c = torch.arange(span, device=qf.device)[None, :]
    band = (c >= r) & (c <= r + before + after)  # (block, span)
    key_pos = (
        torch.arange(n_blocks, device=qf.device)[:, None] * block
        + torch.arange(span, device=qf.device)[None, :]
        + start0
        - pad_left
    )  # (nb, span): position of each slab key in the unpadded keys
    real = (key_pos >= 0) & (key_pos < m)
    mask = band[None] & real[:, None, :]  # (nb, block, span)
    out = qf.new_empty(qf.shape[0], n_blocks * block, d_v)
    lse = qf.new_empty(qf.shape[0], n_blocks * block)
    tiny = torch.finfo(qf.dtype).tiny
    group = max(1, (1 << 18) // (block * span))  # blocks per step: about 256K scores per head
    for g0 in range(0, n_blocks, group):
        g1 = min(g0 + group, n_blocks)
        qb = qp[:, g0 * block : g1 * block].unflatten(1, (g1 - g0, block))  # (BH, g, block, d)
        s = torch.matmul(qb, key_slabs[:, g0:g1]) * scale  # (BH, g, block, span)
        s.masked_fill_(~mask[g0:g1], -math.inf)
        top = s.amax(dim=-1, keepdim=True).nan_to_num_(neginf=0.0)  # padded queries see nothing
        s.sub_(top).exp_()  # unnormalised weights, in place: one exp per score
        row_sum = s.sum(dim=-1, keepdim=True)  # (BH, g, block, 1)
        o = torch.matmul(s, value_slabs[:, g0:g1].transpose(-2, -1))  # (BH, g, block, d_v)
        out[:, g0 * block : g1 * block] = (o / row_sum.clamp_min(tiny)).flatten(1, 2)
        lse[:, g0 * block : g1 * block] = (top + row_sum.log()).flatten(1, 3)
    return out[:, :n], lse[:, :n]
