"""Shared pieces of the Transformer: its type aliases, argument checks and position terms."""

from __future__ import annotations

from typing import Literal

import torch

from ...attention import MultiHeadAttention
from ...positions import alibi_bias, rotary_embedding

Activation = Literal["relu", "gelu"]
#: Every position scheme of a model: absolute codes added to the embeddings ("sinusoidal",
#: "learned"), relative ones inside the attention ("rope", "alibi"), or none at all.
Positions = Literal["sinusoidal", "learned", "rope", "alibi", "none"]
#: The schemes that act inside a layer's self-attention.
AttentionPositions = Literal["rope", "alibi", "none"]


def _dropout(p: float) -> float:
    if not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"dropout must be a probability in [0, 1), got {p!r}")
    return float(p)


def _check_ids(name: str, ids: torch.Tensor, vocab_size: int, max_len: int) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.ndim != 2:
        got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids)
        raise ValueError(f"{name} must be a (B, N) tensor of torch.long token ids, got {got}")
    if ids.shape[1] > max_len:
        raise ValueError(f"{name} has {ids.shape[1]} positions, more than max_len={max_len}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(
            f"{name} must lie in [0, vocab_size={vocab_size}), got ids from {int(ids.min())} "
            f"to {int(ids.max())}"
        )


def _attention_positions(positions: object, d_head: int) -> AttentionPositions:
    if positions not in ("rope", "alibi", "none"):
        raise ValueError(
            f"positions of a layer must be 'rope', 'alibi' or 'none', got {positions!r} "
            "(absolute codes are added by TokenEmbedding)"
        )
    if positions == "rope" and d_head % 2:
        raise ValueError(f"positions='rope' needs an even head size, got d_head={d_head}")
    return positions


def _inside(positions: Positions) -> AttentionPositions:
    """The part of a model's position scheme that acts inside the attention."""
    return positions if positions in ("rope", "alibi") else "none"


def _position_terms(
    positions: AttentionPositions, attn: MultiHeadAttention, x: torch.Tensor
) -> tuple[torch.Tensor | None, tuple[torch.Tensor, torch.Tensor] | None]:
    """The ALiBi bias or the rotary tables for self-attention over ``x`` ``(B, N, d_model)``."""
    n = x.shape[1]
    if positions == "alibi":
        return alibi_bias(n, attn.num_heads, device=x.device, dtype=x.dtype), None  # (H, N, N)
    if positions == "rope":
        return None, rotary_embedding(n, attn.d_head, device=x.device, dtype=x.dtype)
    return None, None
