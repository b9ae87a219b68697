"""The book's BERT: embeddings, then the package's post-LN ``Encoder``, sized like MiniLM."""

from __future__ import annotations

import torch
from torch import nn

from .. import _validate
from ..models.transformer import Encoder
from .minilm import MAX_LENGTH

__all__ = ["BertEmbeddings", "BertEncoder"]


class BertEmbeddings(nn.Module):
    """BERT's input layer: word, position and segment embeddings, summed and normalised.

    Introduced in :ref:`sec-pretrained`.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_len: int = MAX_LENGTH,
        type_vocab_size: int = 2,
        dropout: float = 0.0,
        eps: float = 1e-12,
    ) -> None:
        """Create the three embedding tables and the LayerNorm.

        Args:
            vocab_size: number of token ids, > 0.
            d_model: size of each vector, > 0.
            max_len: number of learned positions, > 0.
            type_vocab_size: number of segments (sentence A / B), > 0.
            dropout: dropout after the LayerNorm, in ``[0, 1)``.
            eps: LayerNorm's epsilon, > 0 (BERT uses 1e-12).
        """
        super().__init__()
        self.word = nn.Embedding(_validate.positive_int("vocab_size", vocab_size), d_model)
        self.position = nn.Embedding(_validate.positive_int("max_len", max_len), d_model)
        self.token_type = nn.Embedding(
            _validate.positive_int("type_vocab_size", type_vocab_size), d_model
        )
        self.norm = nn.LayerNorm(d_model, eps=_validate.positive("eps", eps))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embed every token at its position.

        Args:
            input_ids: ``(B, N)`` long, ``N`` at most ``max_len``.
            token_type_ids: optional ``(B, N)`` long segment ids; ``None`` means all zero.

        Returns:
            ``(B, N, d_model)``.
        """
        _check_ids("input_ids", input_ids, self.position.num_embeddings)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (N,)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))  # type: ignore[no-any-return]


def _check_ids(name: str, ids: object, max_len: int) -> torch.Tensor:
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(ids).__name__}")
    if ids.ndim != 2 or ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(
            f"{name} must be a (B, N) integer tensor, got {ids.dtype} of shape {tuple(ids.shape)}"
        )
    if ids.shape[1] > max_len:
        raise ValueError(
            f"{name} has {ids.shape[1]} tokens, but the model has only {max_len} positions "
            f"(max {max_len} tokens)"
        )
    return ids


class BertEncoder(nn.Module):
    """A BERT-style encoder: :class:`BertEmbeddings`, then the book's post-LN ``Encoder``.

    Introduced in :ref:`sec-pretrained`.
    """

    def __init__(
        self,
        vocab_size: int = 30522,
        d_model: int = 384,
        num_heads: int = 12,
        num_layers: int = 6,
        d_ff: int = 1536,
        max_len: int = MAX_LENGTH,
        type_vocab_size: int = 2,
        dropout: float = 0.0,
        eps: float = 1e-12,
    ) -> None:
        """Create the embeddings and the layers; the defaults are MiniLM-L6-H384's sizes.

        Args:
            vocab_size: number of token ids, > 0.
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: attention heads per layer, > 0.
            num_layers: encoder layers, > 0.
            d_ff: hidden size of the feed-forward layers, > 0.
            max_len: number of learned positions, > 0.
            type_vocab_size: number of segments, > 0.
            dropout: dropout on the embeddings and every residual branch, in ``[0, 1)``.
            eps: every LayerNorm's epsilon, > 0.
        """
        super().__init__()
        self.embeddings = BertEmbeddings(
            vocab_size, d_model, max_len, type_vocab_size, dropout, eps
        )
        self.encoder = Encoder(
            d_model,
            num_heads,
            num_layers,
            d_ff,
            dropout,
            norm_first=False,
            activation="gelu",
            eps=eps,
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compute the last layer's hidden state of every token.

        Args:
            input_ids: ``(B, N)`` long token ids.
            attention_mask: optional ``(B, N)``, True (or 1) for real tokens, False (or 0)
                for padding, which no token attends to.
            token_type_ids: optional ``(B, N)`` segment ids.

        Returns:
            ``(B, N, d_model)``.
        """
        x = self.embeddings(input_ids, token_type_ids)  # (B, N, d_model)
        mask = None
        if attention_mask is not None:
            if not isinstance(attention_mask, torch.Tensor):
                raise TypeError(
                    f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}"
                )
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
                    f"got {tuple(attention_mask.shape)}"
                )
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, N): keys to read
        return self.encoder(x, mask)  # type: ignore[no-any-return]

    def attention_weights(self) -> torch.Tensor:
        """Stack the attention weights of the last forward pass.

        Returns:
            ``(num_layers, B, H, N, N)``.
        """
        return self.encoder.attention_weights()
