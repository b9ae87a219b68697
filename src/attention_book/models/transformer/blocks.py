"""The Transformer's blocks: feed-forward layer, residual sublayer, encoder and decoder layers."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ... import _validate
from ...attention import MultiHeadAttention, causal_mask
from ._common import (
    Activation,
    AttentionPositions,
    _attention_positions,
    _dropout,
    _position_terms,
)

__all__ = ["DecoderLayer", "EncoderLayer", "FeedForward"]


class FeedForward(nn.Module):
    """The position-wise feed-forward layer: expand, apply a nonlinearity, project back.

    Introduced in :ref:`sec-transformer-block`.
    """

    def __init__(
        self, d_model: int, d_ff: int, dropout: float = 0.0, activation: Activation = "relu"
    ) -> None:
        """Create the two linear layers.

        Args:
            d_model: size of the model's vectors, > 0.
            d_ff: size of the hidden layer, > 0 (often ``4 * d_model``).
            dropout: dropout probability after the nonlinearity, in ``[0, 1)``.
            activation: ``"relu"`` or ``"gelu"`` (the exact, erf-based GELU, as in BERT).
        """
        super().__init__()
        _validate.positive_int("d_model", d_model)
        _validate.positive_int("d_ff", d_ff)
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        self.up = nn.Linear(d_model, d_ff)
        self.down = nn.Linear(d_ff, d_model)
        self.activation = nn.ReLU() if activation == "relu" else nn.GELU()
        self.dropout = nn.Dropout(_dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Transform every position on its own.

        Args:
            x: ``(..., d_model)``.

        Returns:
            ``(..., d_model)``.
        """
        return self.down(self.dropout(self.activation(self.up(x))))  # type: ignore[no-any-return]


class _Sublayer(nn.Module):
    """A residual branch with its LayerNorm, before (pre-LN) or after (post-LN) the sum."""

    def __init__(self, d_model: int, dropout: float, norm_first: bool, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def residual(
        self, x: torch.Tensor, branch: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        if self.norm_first:  # x + f(LN(x))
            return x + self.dropout(branch(self.norm(x)))  # type: ignore[no-any-return]
        return self.norm(x + self.dropout(branch(x)))  # type: ignore[no-any-return]  # LN(x + f(x))


class EncoderLayer(nn.Module):
    """One encoder block: self-attention, then a feed-forward layer, each with a residual.

    After a forward pass, ``attention_weights`` holds the self-attention weights
    ``(B, H, N, N)`` (detached).

    Introduced in :ref:`sec-positions`, explained in :ref:`sec-transformer-block`.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        norm_first: bool = True,
        activation: Activation = "relu",
        eps: float = 1e-5,
        positions: AttentionPositions = "none",
    ) -> None:
        """Create the attention, the feed-forward layer and their LayerNorms.

        Args:
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: attention heads, > 0.
            d_ff: hidden size of the feed-forward layer, > 0.
            dropout: dropout on each residual branch, in ``[0, 1)``.
            norm_first: pre-LN (``x + f(LN(x))``) when True, post-LN (``LN(x + f(x))``,
                the original Transformer and BERT) when False.
            activation: the feed-forward nonlinearity, ``"relu"`` or ``"gelu"``.
            eps: LayerNorm's epsilon, > 0.
            positions: position information inside the self-attention: ``"rope"`` (rotary,
                ``d_model / num_heads`` even), ``"alibi"`` (distance penalty) or ``"none"``
                (absolute codes, if any, come with the input).
        """
        super().__init__()
        dropout = _dropout(dropout)
        eps = _validate.positive("eps", eps)
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.positions = _attention_positions(positions, self.self_attn.d_head)
        self.feed_forward = FeedForward(d_model, d_ff, dropout, activation)
        self.attn_sublayer = _Sublayer(d_model, dropout, norm_first, eps)
        self.ff_sublayer = _Sublayer(d_model, dropout, norm_first, eps)
        self.attention_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Let every position attend to the others, then transform each position.

        Args:
            x: ``(B, N, d_model)``.
            mask: optional boolean, broadcastable to ``(B, H, N, N)``, True = may attend:
                ``(N, N)`` (e.g. causal) or ``(B, N, N)`` or ``(B, 1, 1, N)`` (padding).

        Returns:
            ``(B, N, d_model)``.
        """

        bias, rotary = _position_terms(self.positions, self.self_attn, x)

        def attend(h: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor
            out, weights = self.self_attn(h, h, h, mask=mask, bias=bias, rotary=rotary)
            self.attention_weights = weights.detach()
            return out

        x = self.attn_sublayer.residual(x, attend)
        return self.ff_sublayer.residual(x, self.feed_forward)


class DecoderLayer(nn.Module):
    """One decoder block: causal self-attention, cross-attention to the encoder, feed-forward.

    After a forward pass, ``self_attention_weights`` ``(B, H, T, T)`` and
    ``cross_attention_weights`` ``(B, H, T, S)`` hold the weights (detached).

    Introduced in :ref:`sec-transformer-block`.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        norm_first: bool = True,
        activation: Activation = "relu",
        eps: float = 1e-5,
        positions: AttentionPositions = "none",
    ) -> None:
        """Create the two attentions, the feed-forward layer and their LayerNorms.

        Args:
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: attention heads, > 0.
            d_ff: hidden size of the feed-forward layer, > 0.
            dropout: dropout on each residual branch, in ``[0, 1)``.
            norm_first: pre-LN when True, post-LN when False.
            activation: the feed-forward nonlinearity, ``"relu"`` or ``"gelu"``.
            eps: LayerNorm's epsilon, > 0.
            positions: position information inside the causal self-attention, ``"rope"``,
                ``"alibi"`` or ``"none"`` (the cross-attention never gets any).
        """
        super().__init__()
        dropout = _dropout(dropout)
        eps = _validate.positive("eps", eps)
        self.self_attn = MultiHeadAttention(d_model, num_heads)
        self.positions = _attention_positions(positions, self.self_attn.d_head)
        self.cross_attn = MultiHeadAttention(d_model, num_heads)
        self.feed_forward = FeedForward(d_model, d_ff, dropout, activation)
        self.self_sublayer = _Sublayer(d_model, dropout, norm_first, eps)
        self.cross_sublayer = _Sublayer(d_model, dropout, norm_first, eps)
        self.ff_sublayer = _Sublayer(d_model, dropout, norm_first, eps)
        self.self_attention_weights: torch.Tensor | None = None
        self.cross_attention_weights: torch.Tensor | None = None

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend to the earlier outputs, then to the encoder's output, then transform.

        Args:
            x: ``(B, T, d_model)``, the decoder's input so far.
            memory: ``(B, S, d_model)``, the encoder's output.
            memory_mask: optional boolean, broadcastable to ``(B, H, T, S)``, True for the
                encoder positions a query may read, e.g. ``(B, 1, 1, S)`` for padding.

        Returns:
            ``(B, T, d_model)``.
        """
        causal = causal_mask(x.shape[1], device=x.device)  # (T, T)
        bias, rotary = _position_terms(self.positions, self.self_attn, x)

        def attend_self(h: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor
            out, weights = self.self_attn(h, h, h, mask=causal, bias=bias, rotary=rotary)
            self.self_attention_weights = weights.detach()
            return out

        def attend_memory(h: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor
            out, weights = self.cross_attn(h, memory, memory, mask=memory_mask)
            self.cross_attention_weights = weights.detach()
            return out

        x = self.self_sublayer.residual(x, attend_self)
        x = self.cross_sublayer.residual(x, attend_memory)
        return self.ff_sublayer.residual(x, self.feed_forward)
