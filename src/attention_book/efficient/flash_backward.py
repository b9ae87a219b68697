"""FlashAttention's backward pass: gradients tile by tile, recomputing the weights from lse."""

from __future__ import annotations

import math

import torch

from .. import _validate
from ._common import (
    _block_pair,
    _check_causal,
    _check_qkv,
    _compute_dtype,
    _flat,
    _scale,
)

__all__ = ["flash_attention_backward"]

_LOG2_E = math.log2(math.e)  # exp(x) = 2^(x log2 e): weights come from one exp2 per score
_BACKWARD_BLOCKS = (512, 256)  # (block_q, block_k): the fastest backward measured on a CPU


def flash_attention_backward(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    causal: bool = False,
    block_size: int | tuple[int, int] | None = None,
    scale: float | None = None,
    grad_lse: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compute the gradients of attention tile by tile, never holding an N x M matrix.

    FlashAttention-2's backward pass. The forward kept only the output ``O`` and, per query,
    ``lse = log sum_j exp(s_j)`` of the scaled scores ``S = scale Q K^T``; the weights of any
    tile come back as ``P = exp(S - lse)``, exactly normalised. With ``D = rowsum(dO * O)``
    (one number per query, since ``sum_j P_ij dP_ij = dO_i . O_i``) the softmax's backward
    needs no row sums over tiles: for each tile

    ``dV += P^T dO``, ``dP = dO V^T``, ``dS = P * (dP - D)``, ``dQ += scale dS K``,
    ``dK += scale dS^T Q``.

    Loop order: key blocks outside, query blocks inside, as in FlashAttention-2. A key
    block's ``dK`` and ``dV`` then sum in two small accumulators, and only ``dQ`` is added to
    in place, kept block by block so that each query block's rows are one contiguous piece of
    memory (a slice of an ``(N, d)`` matrix per head is not, and adding into it is slower).
    The weights of a tile are one matrix product and one in-place ``exp2``: ``-lse`` is
    folded into the product as an extra feature,
    ``[q scale log2 e, -lse log2 e] . [k, 1] = (s - lse) log2 e``, and so is ``-D``,
    ``[dO, -D] . [v, 1] = dP - D``; ``dS`` is then one in-place product with ``P`` in the
    second of two tile buffers, and the scale of ``dQ`` and ``dK`` is applied once at the end.
    Measured on two CPU threads at ``N = 4096``, ``d = 64``, 8 heads: with every accumulator
    kept in contiguous blocks the two loop orders took the same time (within 3%; queries
    outside needs ``dK`` and ``dV`` in blocks instead); ``dQ`` as one ``(N, d)`` matrix per
    head took about 15% longer; tiles of 512 queries by 256 keys were the fastest, the
    forward's 256 by 1024 about 20% slower (30% causal). With ``causal=True`` a key block
    skips the queries that cannot see it and masks only the tiles that cross the diagonal.

    Args:
        grad_out: ``dO``, the gradient of the loss with respect to the output, ``(..., N, d_v)``.
        q: queries ``(..., N, d)``.
        k: keys ``(..., M, d)``, with the leading dims of ``q``.
        v: values ``(..., M, d_v)``.
        out: the forward's output ``(..., N, d_v)``.
        lse: the forward's natural log-sum-exp of the scaled scores ``(..., N)``, as
            :func:`flash_attention_with_lse` returns it.
        causal: query ``i`` sees keys ``j <= i + M - N`` only; needs ``N <= M``.
        block_size: rows of queries and of keys per tile, ``(block_q, block_k)``, or one int
            for both; each > 0; ``None`` means ``(512, 256)``. Memory is two tiles of
            ``batch * block_q * block_k`` numbers.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.
        grad_lse: the gradient with respect to ``lse`` ``(..., N)``, if the loss uses it;
            since ``d lse / d s_j = P_j`` it only lowers ``D`` by ``grad_lse``.

    Returns:
        ``(dq, dk, dv)``, shaped and typed as ``q``, ``k`` and ``v`` (not differentiable
        again).

    Introduced in :ref:`sec-flash-backward`.
    """
    q, k, v = _check_qkv(q, k, v)
    n, m, d_v = q.shape[-2], k.shape[-2], v.shape[-1]
    rows, out_shape = tuple(q.shape[:-1]), (*q.shape[:-1], d_v)
    expected = [("grad_out", grad_out, out_shape), ("out", out, out_shape), ("lse", lse, rows)]
    if grad_lse is not None:
        expected.append(("grad_lse", grad_lse, rows))
    for name, x, shape in expected:
        got = _validate.tensor(name, x, min_ndim=min(len(shape), 2)).shape
        if got != shape:
            what = "(..., N, d_v)" if len(shape) == len(out_shape) else "(..., N)"
            raise ValueError(
                f"{name} must be {what} = {shape} for q {tuple(q.shape)} and v "
                f"{tuple(v.shape)}, got {tuple(got)}"
            )
    causal = _check_causal(causal, n, m)
    block_q, block_k = _block_pair(_BACKWARD_BLOCKS if block_size is None else block_size)
    scale = _scale(scale, q.shape[-1])
    return _backward(grad_out, q, k, v, out, lse, grad_lse, causal, block_q, block_k, scale)


@torch.no_grad()  # the gradients are results, not a graph to differentiate again
def _backward(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_lse: torch.Tensor | None,
    causal: bool,
    block_q: int,
    block_k: int,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The tiled backward on checked arguments."""
    n, m, d, d_v = q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]
    dtype = _compute_dtype(q.dtype)
    qf, kf, vf, dof, of = (_flat(x).to(dtype) for x in (q, k, v, grad_out, out))
    bh, offset = qf.shape[0], m - n  # query i sits at key position i + offset
    delta = (dof * of).sum(-1)  # (BH, N): D = rowsum(dO * O) = sum_j P_ij dP_ij
    if grad_lse is not None:
        delta -= grad_lse.reshape(bh, n).to(dtype)
    lse2 = lse.reshape(bh, n, 1).to(dtype) * _LOG2_E
    q_ext = torch.cat([qf * (scale * _LOG2_E), -lse2], dim=-1)  # (BH, N, d + 1)
    k_ext = torch.cat([kf, kf.new_ones(bh, m, 1)], dim=-1).transpose(1, 2)  # (BH, d + 1, M)
    do_ext = torch.cat([dof, -delta[..., None]], dim=-1)  # (BH, N, d_v + 1)
    v_ext = torch.cat([vf, vf.new_ones(bh, m, 1)], dim=-1).transpose(1, 2)  # (BH, d_v + 1, M)
    block_q, block_k = min(block_q, n), min(block_k, m)
    blocks = -(-n // block_q)
    dq = qf.new_zeros(blocks, bh, block_q, d)  # query block by query block, each contiguous
    dk = qf.new_empty(bh, m, d)
    dv = qf.new_empty(bh, m, d_v)
    p_buffer, ds_buffer = qf.new_empty(bh * block_q * block_k), qf.new_empty(bh * block_q * block_k)
    for j0 in range(0, m, block_k):
        j1 = min(j0 + block_k, m)
        dk_acc = qf.new_zeros(bh, j1 - j0, d)  # sum over query blocks of dS^T Q
        dv_acc = qf.new_zeros(bh, j1 - j0, d_v)  # sum over query blocks of P^T dO
        for b, i0, i1, masked in _query_tiles(j0, j1, n, offset, block_q, causal):
            size = bh * (i1 - i0) * (j1 - j0)
            p = p_buffer[:size].view(bh, i1 - i0, j1 - j0)
            torch.bmm(q_ext[:, i0:i1], k_ext[:, :, j0:j1], out=p)  # (s - lse) log2 e
            if masked:  # key j0 + c is in the future of query i0 + r: c - r > i0 + offset - j0
                future = torch.ones(i1 - i0, j1 - j0, dtype=torch.bool, device=p.device)
                p.masked_fill_(future.triu_(i0 + offset - j0 + 1), -math.inf)
            p.exp2_()  # (BH, bq, bk): P, the weights, exactly normalised
            dv_acc.baddbmm_(p.transpose(1, 2), dof[:, i0:i1])
            ds = ds_buffer[:size].view(bh, i1 - i0, j1 - j0)
            torch.bmm(do_ext[:, i0:i1], v_ext[:, :, j0:j1], out=ds)  # dP - D
            ds.mul_(p)  # dS / scale = P * (dP - D)
            start = i0 - b * block_q  # > 0 only where causal attention skips the first rows
            dq[b, :, start : start + i1 - i0].baddbmm_(ds, kf[:, j0:j1])
            dk_acc.baddbmm_(ds.transpose(1, 2), qf[:, i0:i1])
        torch.mul(dk_acc, scale, out=dk[:, j0:j1])
        dv[:, j0:j1] = dv_acc
    dq = dq.mul_(scale).transpose(0, 1).reshape(bh, blocks * block_q, d)[:, :n]  # (BH, N, d)
    return (
        dq.reshape(q.shape).to(q.dtype),
        dk.reshape(k.shape).to(k.dtype),
        dv.reshape(v.shape).to(v.dtype),
    )


def _query_tiles(
    j0: int, j1: int, n: int, offset: int, block_q: int, causal: bool
) -> list[tuple[int, int, int, bool]]:
    """Query blocks ``(b, i0, i1, masked)`` that see some of the keys ``j0 .. j1 - 1``.

    Block ``b`` holds queries ``b * block_q`` on; with ``causal=True`` its rows that see none
    of these keys are skipped (``i0`` is later), and ``masked`` says that some of its
    queries see only some of the keys.
    """
    first = max(0, j0 - offset) if causal else 0  # query i sees key j0 when i + offset >= j0
    tiles = []
    for b in range(first // block_q, -(-n // block_q)):
        i0, i1 = max(b * block_q, first), min((b + 1) * block_q, n)
        tiles.append((b, i0, i1, causal and i0 + offset < j1 - 1))
    return tiles
