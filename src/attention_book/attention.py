"""Softmax and scaled dot-product attention, written to be read.

Shapes follow one convention across the book: batch dimensions first, then the sequence,
then features. Queries are ``(..., N, d)``, keys ``(..., M, d)``, values ``(..., M, d_v)``.
"""

from __future__ import annotations

import math

import torch

from . import _validate

__all__ = ["scaled_dot_product_attention", "softmax"]


def softmax(scores: torch.Tensor, dim: int = -1, temperature: float = 1.0) -> torch.Tensor:
    """Turn scores into positive weights that sum to one along ``dim``.

    Subtracting the maximum before exponentiating changes nothing mathematically (softmax is
    shift invariant) but keeps ``exp`` from overflowing for large scores.

    Args:
        scores: any floating-point tensor.
        dim: the dimension along which the weights sum to one.
        temperature: divides the scores first; below 1 sharpens the weights, above 1
            flattens them. Must be > 0.

    Returns:
        A tensor of the same shape and dtype as ``scores``.

    Introduced in :ref:`sec-soft-lookup`.
    """
    _validate.tensor("scores", scores)
    _validate.dim_index("dim", dim, scores.ndim)
    temperature = _validate.positive("temperature", temperature)
    z = scores / temperature
    z = z - z.amax(dim=dim, keepdim=True)  # the largest entry becomes exp(0) = 1
    e = z.exp()
    return e / e.sum(dim=dim, keepdim=True)


def scaled_dot_product_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Let every query take a weighted average of the values, weighted by its key scores.

    ``weights = softmax(scale * queries @ keys^T)`` and ``output = weights @ values``.

    Args:
        queries: ``(..., N, d)``.
        keys: ``(..., M, d)``, with the same leading dimensions as ``queries``.
        values: ``(..., M, d_v)``, one value per key.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``. A soft dictionary
            lookup at temperature ``T`` is ``scale = 1 / T``. Must be > 0.

    Returns:
        ``(output, weights)``: ``output`` is ``(..., N, d_v)``; ``weights`` is ``(..., N, M)``
        and each of its rows sums to one.

    Introduced in :ref:`sec-soft-lookup`.
    """
    _validate.tensor("queries", queries, min_ndim=2)
    _validate.tensor("keys", keys, min_ndim=2)
    _validate.tensor("values", values, min_ndim=2)
    q_shape, k_shape, v_shape = tuple(queries.shape), tuple(keys.shape), tuple(values.shape)
    if keys.ndim != queries.ndim or keys.shape[:-2] != queries.shape[:-2]:
        raise ValueError(
            f"keys must be (..., M, d) with the leading dims of queries {q_shape}, got {k_shape}"
        )
    if keys.shape[-1] != queries.shape[-1]:
        raise ValueError(
            f"keys must have the feature size d={q_shape[-1]} of queries {q_shape}, got {k_shape}"
        )
    if values.ndim != keys.ndim or values.shape[:-1] != keys.shape[:-1]:
        raise ValueError(
            f"values must be (..., M, d_v) matching keys {k_shape} in all but the last dim, "
            f"got {v_shape}"
        )
    if not queries.dtype == keys.dtype == values.dtype:
        raise TypeError(
            "queries, keys and values must share one dtype, got "
            f"{queries.dtype}, {keys.dtype} and {values.dtype}"
        )
    if scale is None:
        scale = 1.0 / math.sqrt(queries.shape[-1])
    scale = _validate.positive("scale", scale)
    scores = (queries @ keys.transpose(-2, -1)) * scale  # (..., N, M)
    weights = softmax(scores, dim=-1)  # (..., N, M), rows sum to one
    return weights @ values, weights  # (..., N, d_v), (..., N, M)
