"""Sentence embeddings as all-MiniLM-L6-v2 makes them: mean-pool the tokens, normalise."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch.nn import functional as F

from .. import _validate
from .bert import BertEncoder
from .minilm import minilm_tokenize
from .transfer import minilm_encoder

__all__ = ["mean_pool", "minilm_embed"]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the hidden states of the real tokens (not the padding) of each text.

    Args:
        hidden: ``(B, N, d)`` floating-point hidden states.
        attention_mask: ``(B, N)``, True (or 1) for real tokens.

    Returns:
        ``(B, d)``.

    Introduced in :ref:`sec-pretrained`.
    """
    _validate.tensor("hidden", hidden)
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(
            f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}"
        )
    if hidden.ndim != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"hidden must be (B, N, d) and attention_mask (B, N), got hidden "
            f"{tuple(hidden.shape)} and attention_mask {tuple(attention_mask.shape)}"
        )
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, N, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)  # (B, d)


@functools.lru_cache(maxsize=1)
def _shared_encoder() -> BertEncoder:
    return minilm_encoder()


def minilm_embed(text: str | Sequence[str]) -> torch.Tensor:
    """Embed texts as all-MiniLM-L6-v2 does: mean-pool the book's encoder, then normalise.

    sentence-transformers computes the same vectors for texts of at most 256 tokens (it cuts
    longer ones to 256; this function takes up to :data:`MAX_LENGTH`).

    Args:
        text: a non-empty string, or a non-empty list of them.

    Returns:
        ``(B, 384)`` unit vectors; their dot products are cosine similarities.

    Introduced in :ref:`sec-pretrained`.
    """
    batch = minilm_tokenize(text)
    with torch.no_grad():
        hidden = _shared_encoder()(batch.input_ids, batch.attention_mask)  # (B, N, 384)
    return F.normalize(mean_pool(hidden, batch.attention_mask), dim=-1)
