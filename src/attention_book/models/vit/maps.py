"""Reading a ViT's attention maps: how far each head looks."""

from __future__ import annotations

import torch

from ... import _validate
from .patches import _size_pair

__all__ = ["mean_attention_distance"]


def mean_attention_distance(
    weights: torch.Tensor, grid: tuple[int, int], patch_size: int = 1
) -> torch.Tensor:
    """Return how far, on average, each query patch looks: the weighted distance to its keys.

    For a query patch ``i``, the distance is ``sum_j a_ij * ||pos_i - pos_j||``, with the
    positions of the patch centres on the image; the result averages it over the queries.
    When ``N = gh * gw + 1``, token 0 is taken as a class token: its row and column are
    dropped and each patch's weights on the other patches renormalised to sum to one.

    Args:
        weights: ``(..., N, N)`` attention weights over ``N = gh * gw`` patches in reading
            order (or ``gh * gw + 1`` tokens with a class token first).
        grid: ``(gh, gw)``, the patches per column and per row.
        patch_size: side of a patch in pixels, > 0; the result is in pixels (in patches for 1).

    Returns:
        ``(...)``: the mean distance for each leading index (e.g. each layer, image and head).

    Introduced in :ref:`sec-vit-attention`.
    """
    weights = _validate.tensor("weights", weights, min_ndim=2)
    gh, gw = _size_pair("grid", grid)
    p = _validate.positive_int("patch_size", patch_size)
    n = gh * gw
    if weights.shape[-1] != weights.shape[-2] or weights.shape[-1] not in (n, n + 1):
        raise ValueError(
            f"weights must be (..., {n}, {n}) for a {gh} x {gw} grid (or (..., {n + 1}, "
            f"{n + 1}) with a class token), got shape {tuple(weights.shape)}"
        )
    if weights.shape[-1] == n + 1:
        weights = weights[..., 1:, 1:]
        weights = weights / weights.sum(-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
    rows = torch.arange(gh, device=weights.device, dtype=weights.dtype).repeat_interleave(gw)
    cols = torch.arange(gw, device=weights.device, dtype=weights.dtype).repeat(gh)
    centres = torch.stack([rows, cols], dim=-1) * p  # (N, 2), pixels
    distances = torch.cdist(centres, centres)  # (N, N)
    return (weights * distances).sum(-1).mean(-1)
