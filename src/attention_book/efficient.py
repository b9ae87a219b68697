"""Attention without the N x N matrix: tiled, local, linear, cached and distributed.

Every function takes queries ``(..., N, d)``, keys ``(..., M, d)`` and values ``(..., M, d_v)``
as in :mod:`attention_book.attention`, and returns the output ``(..., N, d_v)`` (no weights:
not storing them is the point). With ``causal=True`` and ``N < M`` the queries are the last
``N`` of ``M`` positions, as in :func:`attention_book.attention.causal_mask`.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.multiprocessing.spawn import start_processes

from . import _validate

__all__ = [
    "KVCache",
    "RingResult",
    "flash_attention",
    "linear_attention",
    "merge_partial_attention",
    "ring_attention",
    "run_ring_attention",
    "sliding_window_attention",
]


# --- argument checks ---------------------------------------------------------------------


def _check_qkv(q: object, k: object, v: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q = _validate.tensor("q", q, min_ndim=2)
    k = _validate.tensor("k", k, min_ndim=2)
    v = _validate.tensor("v", v, min_ndim=2)
    if k.ndim != q.ndim or k.shape[:-2] != q.shape[:-2] or k.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"k must be (..., M, d) with the leading dims and d of q {tuple(q.shape)}, "
            f"got {tuple(k.shape)}"
        )
    if v.ndim != k.ndim or v.shape[:-1] != k.shape[:-1]:
        raise ValueError(
            f"v must be (..., M, d_v) matching k {tuple(k.shape)} in all but the last dim, "
            f"got {tuple(v.shape)}"
        )
    if not q.dtype == k.dtype == v.dtype or not q.device == k.device == v.device:
        raise TypeError(
            f"q, k and v must share one dtype and device, got {q.dtype}/{q.device}, "
            f"{k.dtype}/{k.device} and {v.dtype}/{v.device}"
        )
    if q.shape[-2] == 0 or k.shape[-2] == 0 or q.shape[-1] == 0:
        raise ValueError(
            f"q and k need at least one position and one feature, got q {tuple(q.shape)} "
            f"and k {tuple(k.shape)}"
        )
    return q, k, v


def _check_causal(causal: object, n: int, m: int) -> bool:
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if causal and n > m:
        raise ValueError(
            f"causal attention needs N <= M (queries are the last N of M positions), "
            f"got N={n}, M={m}"
        )
    return causal


def _scale(scale: object, d: int) -> float:
    return 1.0 / math.sqrt(d) if scale is None else _validate.positive("scale", scale)


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(..., L, f) -> (batch, L, f) with every leading dim folded into one batch dim."""
    return x.reshape(-1, x.shape[-2], x.shape[-1])


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision inputs are accumulated in float32, as fused kernels do."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


# --- FlashAttention: tiles and an online softmax -----------------------------------------

_LOG2_E = math.log2(math.e)  # exp(x) = 2^(x log2 e); PyTorch's exp2 is faster than exp on CPUs


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    block_size: int | tuple[int, int] = (256, 1024),
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
    because ``torch.exp2_`` is several times faster than ``torch.exp_`` on CPUs. And the shift
    starts at each query's score with key 0 and is raised, with the textbook rescaling of ``l``
    and the output, only for a tile where the bound ``|q| max|k| - m`` says ``exp`` could
    overflow; any shift gives the same result as long as nothing overflows.

    Args:
        q: queries ``(..., N, d)``.
        k: keys ``(..., M, d)``, with the leading dims of ``q``.
        v: values ``(..., M, d_v)``.
        causal: query ``i`` sees keys ``j <= i + M - N`` only; needs ``N <= M``.
        block_size: rows of queries and of keys per tile, ``(block_q, block_k)``, or one int
            for both; each > 0. Memory per tile is ``batch * block_q * block_k`` scores
            (``batch * block_q**2`` for the diagonal tiles of causal attention).
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.

    Returns:
        The output ``(..., N, d_v)``, equal to softmax attention up to rounding.

    Introduced in :ref:`sec-flash-attention`.
    """
    q, k, v = _check_qkv(q, k, v)
    n, m, d, d_v = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    causal = _check_causal(causal, n, m)
    block_q, block_k = _block_pair(block_size)
    scale = _scale(scale, d)
    dtype = _compute_dtype(q.dtype)
    qf, kf, vf = (_flat(x).to(dtype) for x in (q, k, v))  # (BH, N, d), (BH, M, d), (BH, M, d_v)
    bh, offset = qf.shape[0], m - n  # query i sits at key position i + offset
    k_ext = torch.cat([kf, kf.new_ones(bh, m, 1)], dim=-1).transpose(1, 2)  # (BH, d + 1, M)
    k_norm = kf.norm(dim=-1)  # (BH, M)
    limit = math.log2(torch.finfo(dtype).max) / 3  # 2^(s - m) <= 2^limit: far from overflow
    out = qf.new_empty(bh, n, d_v)
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
    return out.reshape(*q.shape[:-1], d_v).to(q.dtype)


def _tiles(
    i0: int, i1: int, m: int, offset: int, block_k: int, causal: bool
) -> list[tuple[int, int, bool]]:
    """Key ranges ``(j0, j1, on_diagonal)`` that the queries ``i0 .. i1 - 1`` visit."""
    if not causal:
        return [(j, min(j + block_k, m), False) for j in range(0, m, block_k)]
    seen_by_all = i0 + offset  # keys j < i0 + offset are visible to every query of the block
    tiles = [(j, min(j + block_k, seen_by_all), False) for j in range(0, seen_by_all, block_k)]
    return [*tiles, (seen_by_all, i1 + offset, True)]  # the square on the diagonal


def _block_pair(block_size: object) -> tuple[int, int]:
    if isinstance(block_size, tuple) and len(block_size) == 2:
        return (
            _validate.positive_int("block_size[0]", block_size[0]),
            _validate.positive_int("block_size[1]", block_size[1]),
        )
    if isinstance(block_size, int) and not isinstance(block_size, bool):
        size = _validate.positive_int("block_size", block_size)
        return size, size
    raise TypeError(
        f"block_size must be an int or a pair (block_q, block_k) of ints, got {block_size!r}"
    )


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


def _attention_with_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain attention that also returns log sum exp of the scores (-inf: no allowed key)."""
    s = (q @ k.transpose(-2, -1)) * scale
    if mask is not None:
        s = s.masked_fill(~mask, -math.inf)
    lse = torch.logsumexp(s, dim=-1)  # (..., N)
    safe = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))
    return torch.exp(s - safe[..., None]) @ v, lse


# --- local attention ---------------------------------------------------------------------


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


# --- linear attention --------------------------------------------------------------------


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    chunk_size: int = 64,
) -> torch.Tensor:
    """Attention with the kernel ``phi(q) . phi(k)``, ``phi = elu + 1``, in time linear in N.

    Replacing ``exp(q . k)`` by ``phi(q) . phi(k)`` lets the sum over keys be taken first:
    ``out_i = phi(q_i) S / phi(q_i) z`` with ``S = sum_j phi(k_j) v_j^T`` and
    ``z = sum_j phi(k_j)``. The causal form needs the prefix sums ``S_i``; it is computed
    chunk by chunk: within a chunk as a small masked product, across chunks through the running
    state, so no ``(N, d, d_v)`` tensor of prefix states is stored. This is not softmax
    attention: its outputs differ from it.

    Args:
        q: queries ``(..., N, d)``.
        k: keys ``(..., M, d)``.
        v: values ``(..., M, d_v)``.
        causal: query ``i`` sees keys ``j <= i + M - N`` only; needs ``N <= M``.
        chunk_size: positions per chunk of the causal form, > 0.

    Returns:
        The output ``(..., N, d_v)``.

    Introduced in :ref:`sec-quadratic-wall`; built step by step in the page on kernel attention.
    """
    q, k, v = _check_qkv(q, k, v)
    n, m, d_v = q.shape[-2], k.shape[-2], v.shape[-1]
    causal = _check_causal(causal, n, m)
    chunk = _validate.positive_int("chunk_size", chunk_size)
    dtype = _compute_dtype(q.dtype)
    fq, fk = (F.elu(_flat(x).to(dtype)) + 1 for x in (q, k))  # (BH, N, d), (BH, M, d)
    vf = _flat(v).to(dtype)
    v_ext = torch.cat([vf, vf.new_ones(vf.shape[0], m, 1)], dim=-1)  # [v, 1]: z rides along
    if not causal:
        state = fk.transpose(1, 2) @ v_ext  # (BH, d, d_v + 1)
        num = fq @ state  # (BH, N, d_v + 1)
        return (num[..., :d_v] / num[..., d_v:]).reshape(*q.shape[:-1], d_v).to(q.dtype)
    offset = m - n
    state0 = fk[:, :offset].transpose(1, 2) @ v_ext[:, :offset]  # keys before query 0
    fk, v_ext = fk[:, offset:], v_ext[:, offset:]  # (BH, N, .): aligned with the queries
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n

    def chunked(x: torch.Tensor) -> torch.Tensor:  # zero padding: phi is applied already
        padded = F.pad(x, (0, 0, 0, pad))
        shaped: torch.Tensor = padded.unflatten(1, (n_chunks, chunk))  # (BH, C, chunk, .)
        return shaped

    cq, ck, cv = chunked(fq), chunked(fk), chunked(v_ext)
    per_chunk = ck.transpose(-2, -1) @ cv  # (BH, C, d, d_v + 1)
    before = per_chunk.cumsum(dim=1) - per_chunk + state0[:, None]  # state entering each chunk
    inside = (cq @ ck.transpose(-2, -1)).tril_()  # (BH, C, chunk, chunk): causal within chunk
    num = (cq @ before + inside @ cv).flatten(1, 2)[:, :n]  # (BH, N, d_v + 1)
    return (num[..., :d_v] / num[..., d_v:]).reshape(*q.shape[:-1], d_v).to(q.dtype)


# --- KV cache ----------------------------------------------------------------------------


class KVCache:
    """Keys and values of the positions a decoder has already processed, grown in place.

    Storage for ``max_len`` positions is allocated at the first :meth:`update`; each update
    writes the new positions after the old ones and returns views of everything so far, so
    a decoding step computes keys and values for its new token only.

    Introduced in :ref:`sec-quadratic-wall`; built step by step in the page on inference.
    """

    def __init__(self, max_len: int) -> None:
        """Create an empty cache.

        Args:
            max_len: the most positions it will hold, > 0.
        """
        self.max_len = _validate.positive_int("max_len", max_len)
        self.length = 0
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new keys and values; return all cached ones.

        Args:
            k: keys of the new positions ``(..., n_new, d)``.
            v: values ``(..., n_new, d_v)``, with the leading dims of ``k``.

        Returns:
            ``(keys, values)``: ``(..., length, d)`` and ``(..., length, d_v)``, views into the
            cache, valid until the next update.
        """
        k = _validate.tensor("k", k, min_ndim=2)
        v = _validate.tensor("v", v, min_ndim=2)
        if v.shape[:-1] != k.shape[:-1] or v.dtype != k.dtype or v.device != k.device:
            raise ValueError(
                f"v must be (..., n_new, d_v) with k's leading dims, dtype and device, got k "
                f"{tuple(k.shape)} {k.dtype} and v {tuple(v.shape)} {v.dtype}"
            )
        if self._keys is None or self._values is None:
            lead = k.shape[:-2]
            self._keys = k.new_empty(*lead, self.max_len, k.shape[-1])
            self._values = v.new_empty(*lead, self.max_len, v.shape[-1])
        want = (*self._keys.shape[:-2], k.shape[-2], self._keys.shape[-1])
        if k.shape != want or v.shape[-1] != self._values.shape[-1]:
            raise ValueError(
                f"k must be (..., n_new, d) = {want} like the cached keys, got {tuple(k.shape)}"
                f" (v {tuple(v.shape)}, cached values {tuple(self._values.shape)})"
            )
        new = k.shape[-2]
        if self.length + new > self.max_len:
            raise ValueError(
                f"the cache holds max_len={self.max_len} positions; {self.length} are cached "
                f"and {new} more do not fit"
            )
        self._keys[..., self.length : self.length + new, :] = k
        self._values[..., self.length : self.length + new, :] = v
        self.length += new
        return self._keys[..., : self.length, :], self._values[..., : self.length, :]

    def reset(self) -> None:
        """Forget every cached position, keeping the storage for the next sequence."""
        self.length = 0

    @property
    def nbytes(self) -> int:
        """Bytes of the allocated storage, ``2 * max_len * d * element size`` per sequence."""
        if self._keys is None or self._values is None:
            return 0
        return self._keys.nbytes + self._values.nbytes


# --- ring attention ----------------------------------------------------------------------


@dataclass(frozen=True)
class RingResult:
    """What :func:`run_ring_attention` returns: the output and what the ring sent.

    Introduced in :ref:`sec-quadratic-wall`; built step by step in the page on ring attention.
    """

    output: torch.Tensor
    world_size: int
    bytes_sent_per_rank: int


def ring_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, int]:
    """Attend over a sequence split across the processes of a ring; call it on every rank.

    Rank ``r`` of ``P`` holds the ``r``-th contiguous block of queries, keys and values. In
    ``P`` steps each rank attends its queries to the key-value block it holds, merges the
    partial result into its running one with :func:`merge_partial_attention`, and passes the
    block to rank ``r + 1`` while receiving the next from rank ``r - 1``. No rank ever holds
    more than two blocks of keys and values. With ``causal=True``, blocks from later ranks are
    skipped and the rank's own block is masked.

    Args:
        q: this rank's queries ``(..., n, d)``; every rank has the same shapes.
        k: this rank's keys ``(..., n, d)``.
        v: this rank's values ``(..., n, d_v)``.
        causal: each query sees only keys at its own position or earlier.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.

    Returns:
        ``(output, bytes_sent)``: this rank's output ``(..., n, d_v)`` and how many bytes it
        sent to its neighbour.

    Introduced in :ref:`sec-quadratic-wall`; built step by step in the page on ring attention.
    """
    q, k, v = _check_qkv(q, k, v)
    if k.shape[-2] != q.shape[-2]:
        raise ValueError(
            f"each rank needs as many keys as queries, got q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("ring_attention needs an initialised torch.distributed process group")
    scale = _scale(scale, q.shape[-1])
    rank, world = dist.get_rank(), dist.get_world_size()
    n = q.shape[-2]
    out = torch.zeros_like(q[..., :1]).expand(*q.shape[:-1], v.shape[-1]).contiguous()
    lse = torch.full(q.shape[:-1], -math.inf, dtype=q.dtype, device=q.device)
    block = torch.cat([k, v], dim=-1).contiguous()  # one message per step: [k, v]
    sent = 0
    own_mask = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
    for step in range(world):
        source = (rank - step) % world  # whose keys and values we hold now
        incoming = torch.empty_like(block)
        requests = []
        if step < world - 1:  # pass the block on while we compute with it
            requests = [
                dist.isend(block, (rank + 1) % world),
                dist.irecv(incoming, (rank - 1) % world),
            ]
            sent += block.numel() * block.element_size()
        if not causal or source <= rank:
            mask = own_mask if causal and source == rank else None
            part, part_lse = _attention_with_lse(
                q, block[..., : k.shape[-1]], block[..., k.shape[-1] :], scale, mask
            )
            out, lse = merge_partial_attention(out, lse, part, part_lse)
        for request in requests:
            if request is not None:
                request.wait()
        block = incoming
    return out, sent


def _ring_worker(
    rank: int,
    world: int,
    init_file: str,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    results: dict[int, tuple[torch.Tensor, int]],
) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        n = q.shape[-2] // world
        part = slice(rank * n, (rank + 1) * n)
        out, sent = ring_attention(
            q[..., part, :].contiguous(),
            k[..., part, :].contiguous(),
            v[..., part, :].contiguous(),
            causal=causal,
        )
        results[rank] = (out, sent)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ring_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, world_size: int, causal: bool = False
) -> RingResult:
    """Run :func:`ring_attention` on ``world_size`` local processes and gather the output.

    Each process gets one contiguous block of the sequence and talks to its neighbours over
    ``torch.distributed``'s gloo backend, as machines in a cluster would over a network.

    Args:
        q: queries ``(..., N, d)`` on the CPU; ``N`` divisible by ``world_size``.
        k: keys ``(..., N, d)``.
        v: values ``(..., N, d_v)``.
        world_size: number of processes, > 0.
        causal: each query sees only keys at its own position or earlier.

    Returns:
        A :class:`RingResult` with the output ``(..., N, d_v)`` and the bytes each rank sent.

    Introduced in :ref:`sec-quadratic-wall`; built step by step in the page on ring attention.
    """
    q, k, v = _check_qkv(q, k, v)
    world = _validate.positive_int("world_size", world_size)
    n = q.shape[-2]
    if k.shape[-2] != n or n % world:
        raise ValueError(
            f"q and k must have the same length N divisible by world_size={world}, got "
            f"q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if q.device.type != "cpu":
        raise ValueError(f"run_ring_attention runs on CPU processes, got tensors on {q.device}")
    _check_causal(causal, n, n)
    with mp.Manager() as manager, tempfile.TemporaryDirectory() as folder:
        results = manager.dict()
        start_processes(
            _ring_worker,
            args=(world, os.path.join(folder, "rendezvous"), q, k, v, causal, results),
            nprocs=world,
            join=True,
            start_method="spawn",
        )
        parts = [results[r] for r in range(world)]
    output = torch.cat([out for out, _ in parts], dim=-2)
    return RingResult(output, world, parts[0][1])
