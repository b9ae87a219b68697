"""Attention in time linear in N: kernel feature maps and low-rank projections."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import _validate
from ._common import _check_causal, _check_qkv, _compute_dtype, _flat, _scale

__all__ = ["linear_attention", "linformer_attention", "performer_attention", "random_features"]


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

    Introduced in :ref:`sec-quadratic-wall`, explained in :ref:`sec-kernel-attention`.
    """
    q, k, v = _check_qkv(q, k, v)
    causal = _check_causal(causal, q.shape[-2], k.shape[-2])
    chunk = _validate.positive_int("chunk_size", chunk_size)
    dtype = _compute_dtype(q.dtype)
    fq, fk = (F.elu(_flat(x).to(dtype)) + 1 for x in (q, k))  # (BH, N, d), (BH, M, d)
    out = _feature_attention(fq, fk, _flat(v).to(dtype), causal, chunk)
    return out.reshape(*q.shape[:-1], v.shape[-1]).to(q.dtype)


def random_features(
    num_features: int,
    d: int,
    orthogonal: bool = True,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Draw the projection ``W`` of Performer's random features: rows distributed as N(0, I).

    With ``orthogonal=True`` the rows come in blocks of ``d`` orthogonal directions (from the
    QR decomposition of a Gaussian matrix), each rescaled to the length of a Gaussian vector,
    so every row is still N(0, I) but rows of a block never duplicate each other's work.

    Args:
        num_features: rows of ``W``, > 0.
        d: size of the queries and keys, > 0.
        orthogonal: draw orthogonal blocks instead of independent rows.
        generator: seeds the draw.
        dtype: dtype of ``W``.
        device: where to put ``W``.

    Returns:
        ``W`` of shape ``(num_features, d)``.

    Introduced in :ref:`sec-kernel-attention`.
    """
    m = _validate.positive_int("num_features", num_features)
    d = _validate.positive_int("d", d)
    if not isinstance(orthogonal, bool):
        raise TypeError(f"orthogonal must be a bool, got {type(orthogonal).__name__}")
    gaussian = torch.randn(m, d, generator=generator, dtype=torch.float64)
    if orthogonal:
        blocks = []
        for start in range(0, m, d):
            square = torch.randn(d, d, generator=generator, dtype=torch.float64)
            basis, _ = torch.linalg.qr(square)  # orthonormal columns
            blocks.append(basis.T[: m - start])
        lengths = gaussian.norm(dim=-1, keepdim=True)  # chi(d) distributed, as a row's length
        gaussian = torch.cat(blocks) * lengths
    return gaussian.to(dtype=dtype, device=device)


def performer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    features: torch.Tensor,
    causal: bool = False,
    chunk_size: int = 64,
    scale: float | None = None,
) -> torch.Tensor:
    """Approximate softmax attention with Performer's positive random features (FAVOR+).

    ``exp(x . y) = E_w[exp(w . x - |x|^2 / 2) exp(w . y - |y|^2 / 2)]`` for ``w ~ N(0, I)``,
    so with ``phi(x) = exp(W x - |x|^2 / 2) / sqrt(m)`` the product ``phi(q) . phi(k)`` is an
    unbiased estimate of the softmax kernel (queries and keys are first multiplied by
    ``sqrt(scale)``) and attention is computed as in :func:`linear_attention`. The estimate
    improves as the number of features ``m`` grows. Constant factors shared by all keys, or
    by all features of one query, cancel in the normalisation: they are subtracted in the
    exponent to keep it from overflowing.

    Args:
        q: queries ``(..., N, d)``.
        k: keys ``(..., M, d)``.
        v: values ``(..., M, d_v)``.
        features: the projection ``W``, ``(m, d)``, from :func:`random_features`.
        causal: query ``i`` sees keys ``j <= i + M - N`` only; needs ``N <= M``.
        chunk_size: positions per chunk of the causal form, > 0.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.

    Returns:
        The output ``(..., N, d_v)``, an estimate of softmax attention.

    Introduced in :ref:`sec-kernel-attention`.
    """
    q, k, v = _check_qkv(q, k, v)
    d = q.shape[-1]
    w = _validate.tensor("features", features, min_ndim=2)
    if w.ndim != 2 or w.shape[-1] != d:
        raise ValueError(f"features must be (m, d) with d={d}, got {tuple(w.shape)}")
    causal = _check_causal(causal, q.shape[-2], k.shape[-2])
    chunk = _validate.positive_int("chunk_size", chunk_size)
    root = math.sqrt(_scale(scale, d))
    dtype = _compute_dtype(q.dtype)
    w = w.to(dtype=dtype, device=q.device)
    xq, xk = (_flat(x).to(dtype) * root for x in (q, k))  # (BH, N, d), (BH, M, d)
    wq = xq @ w.T - xq.pow(2).sum(-1, keepdim=True) / 2  # (BH, N, m): log phi(q) + const
    wk = xk @ w.T - xk.pow(2).sum(-1, keepdim=True) / 2  # (BH, M, m)
    fq = torch.exp(wq - wq.amax(dim=-1, keepdim=True))  # a factor per query: cancels
    fk = torch.exp(wk - wk.amax(dim=(-2, -1), keepdim=True))  # one factor for all keys: cancels
    out = _feature_attention(fq, fk, _flat(v).to(dtype), causal, chunk)
    return out.reshape(*q.shape[:-1], v.shape[-1]).to(q.dtype)


def linformer_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    proj_k: torch.Tensor,
    proj_v: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Attend to ``r`` mixtures of the keys and values instead of all ``M`` (Linformer).

    ``proj_k`` and ``proj_v`` are ``(r, M)`` matrices that mix the sequence dimension:
    ``k' = proj_k @ k`` and ``v' = proj_v @ v`` hold ``r`` rows, and the output is softmax
    attention of the queries over them, costing ``N * r`` scores instead of ``N * M``. In the
    paper the projections are trained with the model; any ``(r, M)`` matrix works here. The
    mixing crosses positions, so there is no causal form.

    Args:
        q: queries ``(..., N, d)``.
        k: keys ``(..., M, d)``.
        v: values ``(..., M, d_v)``.
        proj_k: ``(r, M)``, mixes the keys along the sequence.
        proj_v: ``(r, M)`` for the values; ``None`` shares ``proj_k``.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.

    Returns:
        The output ``(..., N, d_v)``.

    Introduced in :ref:`sec-kernel-attention`.
    """
    q, k, v = _check_qkv(q, k, v)
    m = k.shape[-2]
    e = _validate.tensor("proj_k", proj_k, min_ndim=2)
    f = e if proj_v is None else _validate.tensor("proj_v", proj_v, min_ndim=2)
    for name, p in (("proj_k", e), ("proj_v", f)):
        if p.ndim != 2 or p.shape[-1] != m or p.shape != e.shape:
            raise ValueError(
                f"{name} must be (r, M) with M={m} keys (and proj_v like proj_k "
                f"{tuple(e.shape)}), got {tuple(p.shape)}"
            )
    scale = _scale(scale, q.shape[-1])
    k_low = e.to(k) @ k  # (..., r, d)
    v_low = f.to(v) @ v  # (..., r, d_v)
    weights = torch.softmax((q @ k_low.transpose(-2, -1)) * scale, dim=-1)  # (..., N, r)
    return weights @ v_low


def _feature_attention(
    fq: torch.Tensor, fk: torch.Tensor, vf: torch.Tensor, causal: bool, chunk: int
) -> torch.Tensor:
    """``out_i = sum_j (fq_i . fk_j) v_j / sum_j fq_i . fk_j`` for ``(BH, L, .)`` features."""
    n, m, d_v = fq.shape[1], fk.shape[1], vf.shape[-1]
    v_ext = torch.cat([vf, vf.new_ones(vf.shape[0], m, 1)], dim=-1)  # [v, 1]: z rides along
    if not causal:
        state = fk.transpose(1, 2) @ v_ext  # (BH, f, d_v + 1)
        num = fq @ state  # (BH, N, d_v + 1)
        return num[..., :d_v] / num[..., d_v:]
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
    per_chunk = ck.transpose(-2, -1) @ cv  # (BH, C, f, d_v + 1)
    before = per_chunk.cumsum(dim=1) - per_chunk + state0[:, None]  # state entering each chunk
    inside = (cq @ ck.transpose(-2, -1)).tril_()  # (BH, C, chunk, chunk): causal within chunk
    num = (cq @ before + inside @ cv).flatten(1, 2)[:, :n]  # (BH, N, d_v + 1)
    return num[..., :d_v] / num[..., d_v:]
