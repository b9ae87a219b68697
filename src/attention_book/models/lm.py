"""An attention-only language model, small enough to read its circuits, and two head scores.

A Transformer without feed-forward layers is only embeddings, attention heads that add
their outputs into one residual stream, and an unembedding. Two layers of it are enough for
**induction heads** (Elhage et al. 2021, Olsson et al. 2022): a head in the first layer
copies each token's predecessor into its position, and a head in the second layer uses that
to find the earlier position *after* an occurrence of the current token, and predicts that
the token found there comes next. :func:`prefix_matching_score` and
:func:`previous_token_score` measure the two patterns in attention weights.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from .. import _validate
from ..attention import MultiHeadAttention, causal_mask
from ..positions import rotary_embedding
from .transformer import TokenEmbedding
from .transformer.stacks import stack_weights

__all__ = [
    "AttentionOnlyBlock",
    "AttentionOnlyLM",
    "prefix_matching_score",
    "previous_token_score",
]

LMPositions = Literal["learned", "sinusoidal", "rope", "none"]


class AttentionOnlyBlock(nn.Module):
    """One attention-only block: ``x + MultiHeadAttention(LN(x))`` with a causal mask.

    After a forward pass, ``attention_weights`` holds the weights ``(B, H, N, N)``
    (detached).

    Introduced in :ref:`sec-language-model`.
    """

    def __init__(
        self, d_model: int, num_heads: int, layer_norm: bool = True, rope: bool = False
    ) -> None:
        """Create the attention and its LayerNorm.

        Args:
            d_model: size of the residual stream, > 0, divisible by ``num_heads``.
            num_heads: attention heads, > 0.
            layer_norm: normalise the block's input (pre-LN); ``False`` for none.
            rope: rotate queries and keys by their positions (``d_model / num_heads`` even).
        """
        super().__init__()
        self.attn = MultiHeadAttention(d_model, num_heads)
        if rope and self.attn.d_head % 2:
            raise ValueError(f"rope needs an even head size, got d_head={self.attn.d_head}")
        self.norm: nn.Module = nn.LayerNorm(d_model) if layer_norm else nn.Identity()
        self.rope = rope
        self.attention_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Let every position read the earlier ones and add what it read to itself.

        Args:
            x: ``(B, N, d_model)``.

        Returns:
            ``(B, N, d_model)``.
        """
        n = x.shape[1]
        h = self.norm(x)
        rotary = (
            rotary_embedding(n, self.attn.d_head, device=x.device, dtype=x.dtype)
            if self.rope
            else None
        )
        out: torch.Tensor
        out, weights = self.attn(h, h, h, mask=causal_mask(n, device=x.device), rotary=rotary)
        self.attention_weights = weights.detach()  # (B, H, N, N)
        return x + out


class AttentionOnlyLM(nn.Module):
    """A decoder-only language model without feed-forward layers: attention blocks only.

    Introduced in :ref:`sec-language-model`.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        max_len: int = 128,
        positions: LMPositions = "learned",
        layer_norm: bool = True,
    ) -> None:
        """Create the embeddings, the attention blocks and the unembedding.

        Args:
            vocab_size: number of token ids, > 0.
            d_model: size of the residual stream, > 0, divisible by ``num_heads``.
            num_heads: heads per block, > 0.
            num_layers: attention blocks, > 0.
            max_len: the longest context, > 0.
            positions: ``"learned"`` or ``"sinusoidal"`` codes added to the embeddings,
                ``"rope"`` inside every attention, or ``"none"``.
            layer_norm: a LayerNorm before every block and before the unembedding.
        """
        super().__init__()
        if positions not in ("learned", "sinusoidal", "rope", "none"):
            raise ValueError(
                f"positions must be 'learned', 'sinusoidal', 'rope' or 'none', got {positions!r}"
            )
        num_layers = _validate.positive_int("num_layers", num_layers)
        self.vocab_size, self.max_len = vocab_size, max_len
        self.embed = TokenEmbedding(vocab_size, d_model, max_len, positions, pad_id=None)
        self.blocks = nn.ModuleList(
            AttentionOnlyBlock(d_model, num_heads, layer_norm, rope=positions == "rope")
            for _ in range(num_layers)
        )
        self.final_norm: nn.Module = nn.LayerNorm(d_model) if layer_norm else nn.Identity()
        self.unembed = nn.Linear(d_model, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Predict the next token at every position, each seeing only its past.

        Args:
            ids: ``(B, N)`` token ids in ``[0, vocab_size)``, ``N <= max_len``.

        Returns:
            Logits ``(B, N, vocab_size)``.
        """
        x = self.embed(ids)  # (B, N, d_model); TokenEmbedding checks the ids
        for block in self.blocks:
            x = block(x)
        return self.unembed(self.final_norm(x))  # type: ignore[no-any-return]

    def attention_weights(self) -> torch.Tensor:
        """Stack the attention weights of the last forward pass.

        Returns:
            ``(num_layers, B, H, N, N)``.
        """
        return stack_weights([block.attention_weights for block in self.blocks])


def _check_square(weights: object, min_n: int) -> torch.Tensor:
    w = _validate.tensor("weights", weights, min_ndim=2)
    if w.shape[-1] != w.shape[-2] or w.shape[-1] < min_n:
        raise ValueError(
            f"weights must be (..., N, N) self-attention weights with N >= {min_n}, "
            f"got shape {tuple(w.shape)}"
        )
    return w


def prefix_matching_score(weights: torch.Tensor, period: int) -> torch.Tensor:
    """Measure how much a head attends to the token after the earlier copy of the current one.

    The input is ``BOS, x_1 .. x_L, x_1 .. x_L`` (``L = period``), so the token at position
    ``q > L`` equals the one at ``q - L``, and the token that followed it there sits at
    ``q - L + 1``: an induction head's stripe at offset ``-(L - 1)``. The score is the mean
    weight on that key over the queries ``q = L + 1 .. 2L`` (Olsson et al. 2022).

    Args:
        weights: ``(..., N, N)`` causal self-attention weights, ``N >= 2 * period + 1``.
        period: the length ``L`` of the repeated sequence, > 0.

    Returns:
        ``(...)``: one score per head (and sequence), from 0 to 1.

    Introduced in :ref:`sec-language-model`.
    """
    period = _validate.positive_int("period", period)
    w = _check_square(weights, 2 * period + 1)
    queries = torch.arange(period + 1, 2 * period + 1, device=w.device)  # (L,)
    return w[..., queries, queries - period + 1].mean(-1)


def previous_token_score(weights: torch.Tensor) -> torch.Tensor:
    """Measure how much a head attends to the position just before each query.

    Args:
        weights: ``(..., N, N)`` causal self-attention weights, ``N >= 2``.

    Returns:
        ``(...)``: the mean weight on key ``q - 1`` over the queries ``q = 1 .. N - 1``.

    Introduced in :ref:`sec-language-model`.
    """
    w = _check_square(weights, 2)
    return w.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)
