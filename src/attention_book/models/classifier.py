"""A sentence classifier that pools its token states with attention, so one can ask why.

A Transformer encoder turns the tokens into states; a single learned query then scores every
state, a softmax over the real tokens turns the scores into **pooling weights**, and the
weighted average of the states is classified. The weights say which tokens the decision is
built from, in the manner of the structured self-attentive sentence embedding of Lin et al.
(2017), here with one dot-product query instead of their small MLP scorer. They can also be
replaced from outside (``pool_weights=``), to test how much the decision depends on them
(Jain and Wallace 2019).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import _validate
from ..attention import softmax
from .transformer import Encoder, TokenEmbedding
from .transformer._common import Positions

__all__ = ["AttentionPoolingClassifier"]


class AttentionPoolingClassifier(nn.Module):
    """Encode a sentence, pool the token states with a learned query, classify the result.

    After a forward pass, ``last_weights`` holds the pooling weights ``(B, N)`` (detached),
    zero on padding and summing to one over each sentence's tokens.

    Introduced in :ref:`sec-applications`.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int = 2,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 1,
        d_ff: int = 128,
        max_len: int = 64,
        positions: Positions = "rope",
        dropout: float = 0.0,
        pad_id: int = 0,
    ) -> None:
        """Create the embeddings, the encoder, the pooling query and the output layer.

        Args:
            vocab_size: number of token ids, > 0.
            num_classes: number of classes, > 1.
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: attention heads in each encoder layer, > 0.
            num_layers: encoder layers, > 0.
            d_ff: hidden size of the feed-forward layers, > 0.
            max_len: the longest sentence, > 0.
            positions: the position scheme, as in
                :class:`~attention_book.models.transformer.TokenEmbedding`.
            dropout: dropout probability in the encoder, in ``[0, 1)``.
            pad_id: the padding token, never pooled.
        """
        super().__init__()
        num_classes = _validate.positive_int("num_classes", num_classes)
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.pad_id, self.d_model = pad_id, d_model
        self.embed = TokenEmbedding(vocab_size, d_model, max_len, positions, dropout, pad_id)
        inside = positions if positions in ("rope", "alibi") else "none"
        self.encoder = Encoder(d_model, num_heads, num_layers, d_ff, dropout, positions=inside)
        self.query = nn.Parameter(torch.randn(d_model) / math.sqrt(d_model))
        self.out = nn.Linear(d_model, num_classes)
        self.last_weights: torch.Tensor | None = None

    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn a padded batch of sentences into contextual token states.

        Args:
            ids: ``(B, N)`` token ids, padded with ``pad_id`` at the end.

        Returns:
            ``(states (B, N, d_model), mask (B, N))``, the mask True for real tokens.
        """
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2:
            got = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ValueError(f"ids must be a (B, N) tensor of token ids, got {got}")
        mask = ids != self.pad_id  # (B, N)
        if not mask.any(dim=1).all():
            raise ValueError("every sentence in ids needs at least one token that is not padding")
        states = self.encoder(self.embed(ids), mask[:, None, None, :])  # (B, N, d_model)
        return states, mask

    def pooling_weights(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Score every state against the learned query and softmax over the real tokens.

        Args:
            states: ``(B, N, d_model)`` from :meth:`encode`.
            mask: ``(B, N)`` boolean, True for real tokens.

        Returns:
            ``(B, N)`` weights, zero on padding, each row summing to one.
        """
        scores = states @ self.query / math.sqrt(self.d_model)  # (B, N)
        return softmax(scores, dim=-1, mask=mask)

    def forward(self, ids: torch.Tensor, pool_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Classify a batch of sentences.

        Args:
            ids: ``(B, N)`` token ids, padded with ``pad_id`` at the end.
            pool_weights: optional ``(B, N)`` weights to pool with instead of the model's own
                (an experiment on the explanation, not for training); zero on padding.

        Returns:
            Logits ``(B, num_classes)``.
        """
        states, mask = self.encode(ids)
        if pool_weights is None:
            weights = self.pooling_weights(states, mask)
        else:
            _validate.tensor("pool_weights", pool_weights)
            if pool_weights.shape != mask.shape:
                raise ValueError(
                    f"pool_weights must be (B, N) = {tuple(mask.shape)} like ids, got "
                    f"{tuple(pool_weights.shape)}"
                )
            weights = pool_weights
        self.last_weights = weights.detach()
        pooled = (weights.unsqueeze(1) @ states).squeeze(1)  # (B, d_model)
        return self.out(pooled)  # type: ignore[no-any-return]
