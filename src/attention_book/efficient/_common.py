"""Argument checks and small pieces shared by the modules of :mod:`attention_book.efficient`."""

from __future__ import annotations

import math

import torch

from .. import _validate


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


def _block_pair(block_size: object) -> tuple[int, int]:
    """``block_size`` of the tiled functions as ``(block_q, block_k)``, each > 0."""
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


def _scale(scale: object, d: int) -> float:
    return 1.0 / math.sqrt(d) if scale is None else _validate.positive("scale", scale)


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(..., L, f) -> (batch, L, f) with every leading dim folded into one batch dim."""
    return x.reshape(-1, x.shape[-2], x.shape[-1])


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision inputs are accumulated in float32, as fused kernels do."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


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
