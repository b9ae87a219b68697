"""Attention whose score function is learned: Bahdanau's additive and Luong's bilinear."""

from __future__ import annotations

import torch
from torch import nn

from .. import _validate
from ._checks import _check_last_dim, _check_rank_and_batch, _check_values
from .dot_product import _weighted_sum

__all__ = ["AdditiveAttention", "BilinearAttention"]


class _ScoredAttention(nn.Module):
    """Attention with a learned score function: subclasses define ``_scores(query, key)``."""

    def __init__(self, query_dim: int, key_dim: int) -> None:
        super().__init__()
        self.query_dim = _validate.positive_int("query_dim", query_dim)
        self.key_dim = _validate.positive_int("key_dim", key_dim)

    def scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Score every key against every query.

        Args:
            query: ``(..., N, query_dim)``.
            key: ``(..., M, key_dim)``.

        Returns:
            Scores ``(..., N, M)``.
        """
        _check_rank_and_batch(query, key, "query", "key")
        _check_last_dim("query", query, self.query_dim)
        _check_last_dim("key", key, self.key_dim)
        return self._scores(query, key)

    def _scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend: weights from the scores, output the weighted sum of the values.

        Args:
            query: ``(..., N, query_dim)``.
            key: ``(..., M, key_dim)``.
            value: ``(..., M, d_v)``.
            mask: optional boolean, broadcastable to ``(..., N, M)``; True = may attend.

        Returns:
            ``(output (..., N, d_v), weights (..., N, M))``.
        """
        scores = self.scores(query, key)  # (..., N, M)
        _check_values(key, value)
        return _weighted_sum(scores, value, mask)


class AdditiveAttention(_ScoredAttention):
    """Bahdanau's additive attention: score = w^T tanh(W_q q + W_k k).

    Introduced in :ref:`sec-score-functions`.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        """Create the two projections and the scoring vector.

        Args:
            query_dim: size of a query, > 0.
            key_dim: size of a key, > 0.
            hidden_dim: size of the hidden layer the two are added in, > 0.
        """
        super().__init__(query_dim, key_dim)
        _validate.positive_int("hidden_dim", hidden_dim)
        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, hidden_dim, bias=False)
        self.score_proj = nn.Linear(hidden_dim, 1, bias=False)

    def _scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        hidden = self.query_proj(query).unsqueeze(-2) + self.key_proj(key).unsqueeze(-3)
        scores: torch.Tensor = self.score_proj(torch.tanh(hidden))  # (..., N, M, 1)
        return scores.squeeze(-1)  # (..., N, M)


class BilinearAttention(_ScoredAttention):
    """Luong's general (bilinear) attention: score = q^T W k.

    Introduced in :ref:`sec-score-functions`.
    """

    def __init__(self, query_dim: int, key_dim: int) -> None:
        """Create the bilinear form ``W`` of shape ``(query_dim, key_dim)``.

        Args:
            query_dim: size of a query, > 0.
            key_dim: size of a key, > 0.
        """
        super().__init__(query_dim, key_dim)
        self.key_proj = nn.Linear(key_dim, query_dim, bias=False)  # W k, so q^T W k = q . (W k)

    def _scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        projected: torch.Tensor = self.key_proj(key)  # (..., M, query_dim)
        return query @ projected.transpose(-2, -1)  # (..., N, M)
