"""Attention in time linear in N: kernel feature maps and low-rank projections."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _validate
from ._common import _check_causal, _check_qkv, _compute_dtype, _flat

__all__ = ["linear_attention"]


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
