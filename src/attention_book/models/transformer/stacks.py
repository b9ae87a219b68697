"""Stacks of encoder or decoder layers, with the final LayerNorm of a pre-LN stack."""

from __future__ import annotations

import torch
from torch import nn

from ... import _validate
from ._common import (
    Activation,
    AttentionPositions,
)
from .blocks import DecoderLayer, EncoderLayer

__all__ = ["Decoder", "Encoder"]


def stack_weights(weights: list[object]) -> torch.Tensor:
    """Stack the attention weights that each layer kept from the last forward pass."""
    tensors = [w for w in weights if isinstance(w, torch.Tensor)]
    if len(tensors) < len(weights):
        raise RuntimeError("no attention weights yet: run a forward pass first")
    return torch.stack(tensors)


class _LayerStack(nn.Module):
    """``num_layers`` separately parametrised layers of one kind, then a LayerNorm if pre-LN."""

    layer_type: type[EncoderLayer] | type[DecoderLayer]

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        num_layers: int,
        d_ff: int,
        dropout: float = 0.0,
        norm_first: bool = True,
        activation: Activation = "relu",
        eps: float = 1e-5,
        positions: AttentionPositions = "none",
    ) -> None:
        """Create ``num_layers`` identical (but separately parametrised) layers.

        Args:
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: attention heads per attention, > 0.
            num_layers: layers, > 0.
            d_ff: hidden size of each feed-forward layer, > 0.
            dropout: dropout on each residual branch, in ``[0, 1)``.
            norm_first: pre-LN when True (then a final LayerNorm follows the stack),
                post-LN when False.
            activation: the feed-forward nonlinearity, ``"relu"`` or ``"gelu"``.
            eps: LayerNorm's epsilon, > 0.
            positions: ``"rope"``, ``"alibi"`` or ``"none"`` in every layer's self-attention,
                as in :class:`EncoderLayer` and :class:`DecoderLayer`.
        """
        super().__init__()
        num_layers = _validate.positive_int("num_layers", num_layers)
        self.layers = nn.ModuleList(
            self.layer_type(
                d_model, num_heads, d_ff, dropout, norm_first, activation, eps, positions
            )
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model, eps=eps) if norm_first else nn.Identity()


class Encoder(_LayerStack):
    """A stack of encoder layers (with a final LayerNorm when pre-LN).

    Introduced in :ref:`sec-positions`, explained in :ref:`sec-transformer-block`.
    """

    layer_type = EncoderLayer

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run every layer in turn.

        Args:
            x: ``(B, N, d_model)``.
            mask: optional boolean mask for every layer's self-attention, as in
                :meth:`EncoderLayer.forward`.

        Returns:
            ``(B, N, d_model)``.
        """
        for layer in self.layers:
            x = layer(x, mask)
        return self.final_norm(x)  # type: ignore[no-any-return]

    def attention_weights(self) -> torch.Tensor:
        """Stack the self-attention weights of the last forward pass.

        Returns:
            ``(num_layers, B, H, N, N)``.
        """
        return stack_weights([layer.attention_weights for layer in self.layers])


class Decoder(_LayerStack):
    """A stack of decoder layers (with a final LayerNorm when pre-LN).

    Introduced in :ref:`sec-transformer-block`.
    """

    layer_type = DecoderLayer

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Run every layer in turn, each reading the same encoder output.

        Args:
            x: ``(B, T, d_model)``.
            memory: ``(B, S, d_model)``.
            memory_mask: optional boolean mask over the encoder positions, as in
                :meth:`DecoderLayer.forward`.

        Returns:
            ``(B, T, d_model)``.
        """
        for layer in self.layers:
            x = layer(x, memory, memory_mask)
        return self.final_norm(x)  # type: ignore[no-any-return]
