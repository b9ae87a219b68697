"""Masks: which keys a query may attend to (True = may attend).

A causal mask hides the future; a padding mask hides the padding of shorter sequences.
"""

from __future__ import annotations

import torch

from .. import _validate

__all__ = ["causal_mask", "padding_mask"]


def causal_mask(n: int, m: int | None = None, device: torch.device | None = None) -> torch.Tensor:
    """Build the mask that lets each query see only keys at its own position or earlier.

    Args:
        n: number of queries, > 0.
        m: number of keys, >= ``n``; ``None`` means ``n``. When ``n < m`` the queries are the
            last ``n`` positions (query ``i`` sits at position ``m - n + i``), as when a
            decoder with a cache of ``m - n`` earlier keys processes ``n`` new tokens.
        device: where to create the mask.

    Returns:
        A boolean ``(n, m)`` tensor, True where query ``i`` may attend to key ``j``.

    Introduced in :ref:`sec-masks`.
    """
    n = _validate.positive_int("n", n)
    m = n if m is None else _validate.positive_int("m", m)
    if m < n:
        raise ValueError(f"m must be >= n (each query needs its own key), got n={n}, m={m}")
    return torch.ones(n, m, dtype=torch.bool, device=device).tril(diagonal=m - n)


def padding_mask(lengths: torch.Tensor | list[int], max_len: int) -> torch.Tensor:
    """Mark the real tokens of a batch of sequences padded to ``max_len``.

    Args:
        lengths: ``(B,)`` integer lengths, each in ``[0, max_len]``.
        max_len: the padded length, > 0.

    Returns:
        A boolean ``(B, max_len)`` tensor, True for real tokens. As a key mask for
        attention weights ``(B, N, M)`` use ``mask[:, None, :]``; with heads
        ``(B, H, N, M)``, ``mask[:, None, None, :]``.

    Introduced in :ref:`sec-masks`.
    """
    max_len = _validate.positive_int("max_len", max_len)
    if isinstance(lengths, list):
        lengths = torch.tensor(lengths, dtype=torch.long)
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(f"lengths must be a tensor or a list of ints, got {type(lengths).__name__}")
    if lengths.ndim != 1 or lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError(
            f"lengths must be a 1-D integer tensor (B,), got {lengths.dtype} of shape "
            f"{tuple(lengths.shape)}"
        )
    if len(lengths) and (lengths.min() < 0 or lengths.max() > max_len):
        raise ValueError(f"lengths must lie in [0, max_len={max_len}], got {lengths.tolist()}")
    positions = torch.arange(max_len, device=lengths.device)
    return positions[None, :] < lengths[:, None]  # (B, max_len)
