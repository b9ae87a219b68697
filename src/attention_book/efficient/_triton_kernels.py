"""The Triton kernels behind :func:`attention_book.efficient.triton_flash_attention`.

Imported on the first call only, so that ``import attention_book`` never needs Triton. The
layout, the grid and the masks are explained in :mod:`attention_book.efficient.triton_flash`.
``triton.jit`` reads ``TRITON_INTERPRET`` when it decorates a function (Triton's own helpers,
``tl.max`` and ``tl.sum``, when triton is imported): with ``1`` these are Python functions that
Triton's interpreter runs on NumPy arrays, so CPU tensors work; otherwise they are compiled
for the GPU on their first launch.

Every kernel works on one ``(batch, head)`` pair, picked by ``tl.program_id(1)``, whose
tensors are contiguous ``(N, d)`` or ``(M, d)`` blocks of memory: element ``(row, f)`` of the
queries lies ``row * d + f`` elements after the pair's first query. Scores are kept in base 2:
``qk_scale = scale * log2(e)`` turns ``exp(scale * q.k)`` into ``exp2(qk_scale * q.k)``, and
the stored log-sum-exp ``lse`` is ``log2 sum_j exp2(qk_scale * q.k_j)``.
"""

# mypy: disable-error-code="no-untyped-def, untyped-decorator"
# (a kernel's arguments are pointers, ints and tl.constexpr: Triton reads the annotations)

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def flash_forward_kernel(
    q_ptr,  # queries (BH, N, d): a pointer to the first element
    k_ptr,  # keys (BH, M, d)
    v_ptr,  # values (BH, M, d)
    o_ptr,  # output (BH, N, d), written here
    lse_ptr,  # (BH, N) log2-sum-exp2 of each query's scores, written here
    n,  # N, the number of queries
    m,  # M, the number of keys
    d,  # features per query, key and value
    offset,  # M - N: causal query i sees keys j <= i + offset
    qk_scale,  # scale * log2(e), turning exp into exp2
    CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,  # queries per program
    BLOCK_N: tl.constexpr,  # keys per step of the loop
    BLOCK_D: tl.constexpr,  # d rounded up to a power of two (tl.arange needs one)
    PRECISION: tl.constexpr,  # "ieee" (exact float32) or "tf32" for tl.dot
):
    """One program: BLOCK_M queries of one head against all the keys they may see."""
    block = tl.program_id(0)  # which block of queries
    bh = tl.program_id(1).to(tl.int64)  # which (batch, head); int64: bh * n * d may be large
    rows = block * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,) query positions
    feats = tl.arange(0, BLOCK_D)  # (BLOCK_D,) feature indices
    row_ok = rows < n  # the last block may hang over the end: ragged edge
    feat_ok = feats < d
    q_ptr += bh * n * d  # this head's first query; likewise for the others
    k_ptr += bh * m * d
    v_ptr += bh * m * d
    o_ptr += bh * n * d
    lse_ptr += bh * n

    q_mask = row_ok[:, None] & feat_ok[None, :]
    q = tl.load(q_ptr + rows[:, None] * d + feats[None, :], mask=q_mask, other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)  # running max of the scores
    l_i = tl.zeros([BLOCK_M], tl.float32)  # running sum of exp2(score - m_i)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)  # running sum of exp2(score - m_i) v
    end = m
    if CAUSAL:  # the block's last query, rows[-1], sees keys up to rows[-1] + offset
        end = tl.minimum(m, (block + 1) * BLOCK_M + offset)
    for start in range(0, end, BLOCK_N):  # FlashAttention-2: keys in the inner loop
        keys = start + tl.arange(0, BLOCK_N)  # (BLOCK_N,) key positions
        key_ok = keys < m
        kv_mask = key_ok[:, None] & feat_ok[None, :]
        k = tl.load(k_ptr + keys[:, None] * d + feats[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + keys[:, None] * d + feats[None, :], mask=kv_mask, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
        visible = key_ok[None, :]
        if CAUSAL:
            visible = visible & (keys[None, :] <= rows[:, None] + offset)
        s = tl.where(visible, s, float("-inf"))
        # key 0 is in the first tile and every query sees it: m_new is finite from there on
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)  # rescales what was summed under the old maximum
        p = tl.exp2(s - m_new[:, None])  # (BLOCK_M, BLOCK_N) unnormalised weights
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        m_i = m_new
    out = acc / l_i[:, None]
    tl.store(o_ptr + rows[:, None] * d + feats[None, :], out.to(o_ptr.dtype.element_ty), q_mask)
    tl.store(lse_ptr + rows, m_i + tl.log2(l_i), mask=row_ok)  # kept for the backward pass


@triton.jit
def flash_backward_preprocess_kernel(
    o_ptr,  # the output O (BH, N, d)
    do_ptr,  # its gradient dO (BH, N, d)
    delta_ptr,  # (BH, N), written here
    n,
    d,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    """One program: delta = rowsum(dO * O) for BLOCK_M queries of one head."""
    block = tl.program_id(0)
    bh = tl.program_id(1).to(tl.int64)
    rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
    feats = tl.arange(0, BLOCK_D)
    mask = (rows < n)[:, None] & (feats < d)[None, :]
    offsets = bh * n * d + rows[:, None] * d + feats[None, :]
    o = tl.load(o_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    do = tl.load(do_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    tl.store(delta_ptr + bh * n + rows, tl.sum(o * do, axis=1), mask=rows < n)


@triton.jit
def flash_backward_dkdv_kernel(
    q_ptr,  # (BH, N, d)
    k_ptr,  # (BH, M, d)
    v_ptr,  # (BH, M, d)
    do_ptr,  # (BH, N, d) the gradient of the output
    lse_ptr,  # (BH, N) from the forward kernel
    delta_ptr,  # (BH, N) from the preprocess kernel
    dk_ptr,  # (BH, M, d), written here
    dv_ptr,  # (BH, M, d), written here
    n,
    m,
    d,
    offset,
    scale,  # the scale itself, for dK = scale * dS^T Q
    qk_scale,
    CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """One program: dK and dV for BLOCK_N keys of one head, looping over the queries."""
    block = tl.program_id(0)  # which block of keys
    bh = tl.program_id(1).to(tl.int64)
    keys = block * BLOCK_N + tl.arange(0, BLOCK_N)  # (BLOCK_N,)
    feats = tl.arange(0, BLOCK_D)
    key_ok = keys < m
    feat_ok = feats < d
    q_ptr += bh * n * d
    do_ptr += bh * n * d
    lse_ptr += bh * n
    delta_ptr += bh * n
    kv_offsets = bh * m * d + keys[:, None] * d + feats[None, :]
    kv_mask = key_ok[:, None] & feat_ok[None, :]
    k = tl.load(k_ptr + kv_offsets, mask=kv_mask, other=0.0)
    v = tl.load(v_ptr + kv_offsets, mask=kv_mask, other=0.0)

    dk = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    first = 0
    if CAUSAL:  # query i sees key j when i >= j - offset: earlier query blocks see none
        first = (tl.maximum(block * BLOCK_N - offset, 0) // BLOCK_M) * BLOCK_M
    for start in range(first, n, BLOCK_M):
        rows = start + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
        row_ok = rows < n
        q_mask = row_ok[:, None] & feat_ok[None, :]
        q = tl.load(q_ptr + rows[:, None] * d + feats[None, :], mask=q_mask, other=0.0)
        do = tl.load(do_ptr + rows[:, None] * d + feats[None, :], mask=q_mask, other=0.0)
        lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
        delta = tl.load(delta_ptr + rows, mask=row_ok, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
        visible = row_ok[:, None] & key_ok[None, :]
        if CAUSAL:
            visible = visible & (keys[None, :] <= rows[:, None] + offset)
        p = tl.where(visible, tl.exp2(s - lse[:, None]), 0.0)  # the softmax weights, again
        dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=PRECISION)  # P^T dO
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)  # (BLOCK_M, BLOCK_N) dO V^T
        ds = p * (dp - delta[:, None])  # gradient of the scores: P * (dP - rowsum(dO * O))
        dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=PRECISION)  # dS^T Q
    dk = dk * scale  # the scores are scale * Q K^T
    tl.store(dk_ptr + kv_offsets, dk.to(dk_ptr.dtype.element_ty), mask=kv_mask)
    tl.store(dv_ptr + kv_offsets, dv.to(dv_ptr.dtype.element_ty), mask=kv_mask)


@triton.jit
def flash_backward_dq_kernel(
    q_ptr,  # (BH, N, d)
    k_ptr,  # (BH, M, d)
    v_ptr,  # (BH, M, d)
    do_ptr,  # (BH, N, d)
    lse_ptr,  # (BH, N)
    delta_ptr,  # (BH, N)
    dq_ptr,  # (BH, N, d), written here
    n,
    m,
    d,
    offset,
    scale,
    qk_scale,
    CAUSAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """One program: dQ for BLOCK_M queries of one head, looping over the keys they see."""
    block = tl.program_id(0)  # which block of queries
    bh = tl.program_id(1).to(tl.int64)
    rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
    feats = tl.arange(0, BLOCK_D)
    row_ok = rows < n
    feat_ok = feats < d
    k_ptr += bh * m * d
    v_ptr += bh * m * d
    q_offsets = bh * n * d + rows[:, None] * d + feats[None, :]
    q_mask = row_ok[:, None] & feat_ok[None, :]
    q = tl.load(q_ptr + q_offsets, mask=q_mask, other=0.0)
    do = tl.load(do_ptr + q_offsets, mask=q_mask, other=0.0)
    lse = tl.load(lse_ptr + bh * n + rows, mask=row_ok, other=0.0)
    delta = tl.load(delta_ptr + bh * n + rows, mask=row_ok, other=0.0)

    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    end = m
    if CAUSAL:
        end = tl.minimum(m, (block + 1) * BLOCK_M + offset)
    for start in range(0, end, BLOCK_N):
        keys = start + tl.arange(0, BLOCK_N)
        key_ok = keys < m
        kv_mask = key_ok[:, None] & feat_ok[None, :]
        k = tl.load(k_ptr + keys[:, None] * d + feats[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_ptr + keys[:, None] * d + feats[None, :], mask=kv_mask, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PRECISION) * qk_scale
        visible = row_ok[:, None] & key_ok[None, :]
        if CAUSAL:
            visible = visible & (keys[None, :] <= rows[:, None] + offset)
        p = tl.where(visible, tl.exp2(s - lse[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)  # dS K
    dq = dq * scale
    tl.store(dq_ptr + q_offsets, dq.to(dq_ptr.dtype.element_ty), mask=q_mask)
