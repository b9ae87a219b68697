"""Stable softmax and scaled dot-product attention: scores, then weights, then the output."""

from __future__ import annotations

import math

import torch

from .. import _validate
from ._checks import _check_bias, _check_mask, _check_queries_keys, _check_values

__all__ = ["dot_product_scores", "scaled_dot_product_attention", "softmax"]


def softmax(
    scores: torch.Tensor,
    dim: int = -1,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Turn scores into positive weights that sum to one along ``dim``.

    Subtracting the maximum before exponentiating changes nothing mathematically (softmax is
    shift invariant) but keeps ``exp`` from overflowing for large scores.

    Args:
        scores: any floating-point tensor.
        dim: the dimension along which the weights sum to one.
        temperature: divides the scores first; below 1 sharpens the weights, above 1
            flattens them. Must be > 0.
        mask: optional boolean tensor broadcastable to ``scores``; False entries get weight
            exactly 0. A slice with no True entry gets all-zero weights, not NaN.

    Returns:
        A tensor of the shape and dtype of ``scores``.

    Introduced in :ref:`sec-soft-lookup`; masks in :ref:`sec-masks`.
    """
    _validate.tensor("scores", scores)
    _validate.dim_index("dim", dim, scores.ndim)
    temperature = _validate.positive("temperature", temperature)
    z = scores / temperature
    if mask is not None:
        _check_mask(mask, tuple(scores.shape), "scores")
        z = z.masked_fill(~mask, -math.inf)
    top = z.amax(dim=dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # all-masked slice
    e = (z - top).exp()  # the largest allowed entry becomes exp(0) = 1, masked ones 0
    total = e.sum(dim=dim, keepdim=True)
    return e / total.clamp_min(torch.finfo(e.dtype).tiny)


def dot_product_scores(
    queries: torch.Tensor, keys: torch.Tensor, scale: float | None = 1.0
) -> torch.Tensor:
    """Score every key against every query by a (scaled) dot product.

    Args:
        queries: ``(..., N, d)``.
        keys: ``(..., M, d)``, with the leading dimensions of ``queries``.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``. Must be > 0.

    Returns:
        Scores ``(..., N, M)``.

    Introduced in :ref:`sec-score-functions`.
    """
    _check_queries_keys(queries, keys)
    if scale is None:
        scale = 1.0 / math.sqrt(queries.shape[-1])
    scale = _validate.positive("scale", scale)
    return (queries @ keys.transpose(-2, -1)) * scale  # (..., N, M)


def scaled_dot_product_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Let every query take a weighted average of the values, weighted by its key scores.

    ``weights = softmax(scale * queries @ keys^T + bias)`` over the allowed keys, and
    ``output = weights @ values``.

    Args:
        queries: ``(..., N, d)``.
        keys: ``(..., M, d)``, with the same leading dimensions as ``queries``.
        values: ``(..., M, d_v)``, one value per key.
        mask: optional boolean tensor broadcastable to ``(..., N, M)``; True where the query
            may attend to the key. A query with no allowed key gets all-zero weights and a
            zero output.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``. A soft dictionary
            lookup at temperature ``T`` is ``scale = 1 / T``. Must be > 0.
        bias: optional floating-point tensor broadcastable to ``(..., N, M)``, in the dtype
            of ``queries``, added to the scaled scores before the softmax (and the mask), as
            ALiBi's distance penalty is.

    Returns:
        ``(output, weights)``: ``output`` is ``(..., N, d_v)``; ``weights`` is ``(..., N, M)``
        and each row sums to one (or zero, for a query with no allowed key).

    Introduced in :ref:`sec-soft-lookup`; masks in :ref:`sec-masks`; the bias in
    :ref:`sec-positions`.
    """
    scores = dot_product_scores(queries, keys, scale=scale)  # (..., N, M)
    _check_values(keys, values)
    if bias is not None:
        _check_bias(bias, scores)
        scores = scores + bias  # (..., N, M)
    return _weighted_sum(scores, values, mask)  # (..., N, d_v), (..., N, M)


def _weighted_sum(
    scores: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn checked scores ``(..., N, M)`` into weights and average ``values`` ``(..., M, d_v)``."""
    weights = softmax(scores, dim=-1, mask=mask)  # (..., N, M)
    return weights @ values, weights  # (..., N, d_v), (..., N, M)
