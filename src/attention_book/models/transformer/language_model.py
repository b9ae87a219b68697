"""A decoder-only Transformer language model."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ... import _validate
from ...attention import causal_mask
from ._common import (
    Positions,
    _inside,
)
from .embedding import TokenEmbedding
from .stacks import Encoder

__all__ = ["TransformerLM"]


class TransformerLM(nn.Module):
    """A decoder-only language model: causal self-attention blocks and a next-token head.

    Introduced in :ref:`sec-language-model`.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int = 256,
        max_len: int = 128,
        dropout: float = 0.0,
        positions: Positions = "learned",
    ) -> None:
        """Create the embeddings, the causal blocks and the output layer.

        Args:
            vocab_size: number of token ids, > 0.
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: attention heads, > 0.
            num_layers: blocks, > 0.
            d_ff: hidden size of the feed-forward layers, > 0.
            max_len: the longest context, > 0.
            dropout: dropout probability, in ``[0, 1)``.
            positions: ``"sinusoidal"``, ``"learned"``, ``"rope"``, ``"alibi"`` or ``"none"``.
        """
        super().__init__()
        self.max_len = max_len
        self.embed = TokenEmbedding(vocab_size, d_model, max_len, positions, dropout, None)
        self.blocks = Encoder(
            d_model, num_heads, num_layers, d_ff, dropout, True, positions=_inside(positions)
        )
        self.out = nn.Linear(d_model, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Predict the next token at every position, each seeing only its past.

        Args:
            ids: ``(B, N)`` token ids, ``N <= max_len``.

        Returns:
            Logits ``(B, N, vocab_size)``.
        """
        mask = causal_mask(ids.shape[-1], device=ids.device) if ids.ndim == 2 else None
        return self.out(self.blocks(self.embed(ids), mask))  # type: ignore[no-any-return]

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        new_tokens: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Extend ``prompt`` by sampling one token at a time (greedy when temperature is 0).

        Args:
            prompt: ``(B, N)`` token ids, ``N >= 1``.
            new_tokens: tokens to add, > 0.
            temperature: divides the logits; 0 picks the most likely token.
            generator: seeds the sampling.

        Returns:
            ``(B, N + new_tokens)`` ids; the context is cut to the last ``max_len`` tokens.
        """
        new_tokens = _validate.positive_int("new_tokens", new_tokens)
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        ids = prompt
        for _ in range(new_tokens):
            logits = self(ids[:, -self.max_len :])[:, -1]  # (B, V)
            if temperature == 0:
                step = logits.argmax(-1, keepdim=True)
            else:
                probs = F.softmax(logits / temperature, dim=-1)
                step = torch.multinomial(probs, 1, generator=generator)
            ids = torch.cat([ids, step], dim=1)
        return ids
