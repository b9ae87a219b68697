"""Token embeddings plus absolute position codes."""

from __future__ import annotations

import math

import torch
from torch import nn

from ... import _validate
from ...positions import sinusoidal_positions
from ._common import (
    Positions,
    _check_ids,
    _dropout,
)

__all__ = ["TokenEmbedding"]


class TokenEmbedding(nn.Module):
    """Token embeddings plus absolute position codes (sinusoidal, learned, or none).

    With ``"rope"`` or ``"alibi"`` it adds no codes: those schemes act inside the attention.

    Introduced in :ref:`sec-positions`.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_len: int,
        positions: Positions = "sinusoidal",
        dropout: float = 0.0,
        pad_id: int | None = 0,
    ) -> None:
        """Create the embedding table and the position codes.

        Args:
            vocab_size: number of token ids, > 0.
            d_model: size of each vector, > 0 (even for sinusoidal positions).
            max_len: the longest sequence accepted, > 0.
            positions: ``"sinusoidal"`` (fixed), ``"learned"`` (a trained table), or
                ``"rope"``, ``"alibi"``, ``"none"`` (no codes added here).
            dropout: dropout on the sum, in ``[0, 1)``.
            pad_id: the padding token, whose embedding stays zero; ``None`` for none.
        """
        super().__init__()
        self.vocab_size = _validate.positive_int("vocab_size", vocab_size)
        self.d_model = _validate.positive_int("d_model", d_model)
        self.max_len = _validate.positive_int("max_len", max_len)
        self.tokens = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.positions = positions
        if positions == "sinusoidal":
            self.register_buffer("codes", sinusoidal_positions(max_len, d_model), persistent=False)
        elif positions == "learned":
            self.codes = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        elif positions not in ("rope", "alibi", "none"):
            raise ValueError(
                "positions must be 'sinusoidal', 'learned', 'rope', 'alibi' or 'none', "
                f"got {positions!r}"
            )
        self.dropout = nn.Dropout(_dropout(dropout))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Embed a batch of token ids and add the code of each position.

        Args:
            ids: ``(B, N)`` integer token ids in ``[0, vocab_size)``, ``N <= max_len``.

        Returns:
            ``(B, N, d_model)``.
        """
        _check_ids("ids", ids, self.vocab_size, self.max_len)
        x = self.tokens(ids) * math.sqrt(self.d_model)  # (B, N, d_model)
        if self.positions in ("sinusoidal", "learned"):
            x = x + self.codes[: ids.shape[1]]
        return self.dropout(x)  # type: ignore[no-any-return]
