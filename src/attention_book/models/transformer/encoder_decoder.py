"""The encoder-decoder Transformer for sequence-to-sequence tasks."""

from __future__ import annotations

import torch
from torch import nn

from ... import _validate
from ._common import (
    Positions,
    _inside,
)
from .blocks import DecoderLayer
from .embedding import TokenEmbedding
from .stacks import Decoder, Encoder

__all__ = ["Seq2SeqTransformer"]


class Seq2SeqTransformer(nn.Module):
    """An encoder-decoder Transformer for sequence-to-sequence tasks, trained from scratch.

    ``forward(src, tgt_in)`` returns logits with teacher forcing; ``greedy_decode`` generates.
    After either, ``last_attention`` holds the last decoder layer's cross-attention
    ``(B, H, T, S)``.

    Introduced in :ref:`sec-bottleneck`.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int = 128,
        max_len: int = 128,
        dropout: float = 0.0,
        norm_first: bool = True,
        positions: Positions = "sinusoidal",
        pad_id: int = 0,
        bos_id: int = 1,
        eos_id: int = 2,
    ) -> None:
        """Create the embeddings, the encoder, the decoder and the output layer.

        Args:
            src_vocab_size: number of source token ids, > 0.
            tgt_vocab_size: number of target token ids, > 0.
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: attention heads, > 0.
            num_layers: layers in the encoder and in the decoder, > 0.
            d_ff: hidden size of the feed-forward layers, > 0.
            max_len: the longest source or target sequence, > 0.
            dropout: dropout probability, in ``[0, 1)``.
            norm_first: pre-LN when True, post-LN when False.
            positions: ``"sinusoidal"``, ``"learned"``, ``"rope"``, ``"alibi"`` or ``"none"``;
                rotary and ALiBi act in the self-attentions of the encoder and the decoder.
            pad_id: the padding token of both vocabularies.
            bos_id: the token that starts every decoder input.
            eos_id: the token that ends every target.
        """
        super().__init__()
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.src_embed = TokenEmbedding(
            src_vocab_size, d_model, max_len, positions, dropout, pad_id
        )
        self.tgt_embed = TokenEmbedding(
            tgt_vocab_size, d_model, max_len, positions, dropout, pad_id
        )
        inside = _inside(positions)
        self.encoder = Encoder(
            d_model, num_heads, num_layers, d_ff, dropout, norm_first, positions=inside
        )
        self.decoder = Decoder(
            d_model, num_heads, num_layers, d_ff, dropout, norm_first, positions=inside
        )
        self.out = nn.Linear(d_model, tgt_vocab_size)
        self.last_attention: torch.Tensor | None = None

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch of source sequences.

        Args:
            src: ``(B, S)`` token ids, padded with ``pad_id`` at the end.

        Returns:
            ``(memory (B, S, d_model), mask (B, 1, 1, S))``, the mask True for real tokens.
        """
        mask = (src != self.pad_id)[:, None, None, :]  # (B, 1, 1, S)
        return self.encoder(self.src_embed(src), mask), mask

    def decode(
        self, tgt_in: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Predict the next target token at every position.

        Args:
            tgt_in: ``(B, T)`` decoder input, starting with ``bos_id``.
            memory: ``(B, S, d_model)`` from :meth:`encode`.
            mask: ``(B, 1, 1, S)`` from :meth:`encode`.

        Returns:
            Logits ``(B, T, tgt_vocab_size)``.
        """
        h = self.decoder(self.tgt_embed(tgt_in), memory, mask)  # (B, T, d_model)
        last = self.decoder.layers[-1]
        assert isinstance(last, DecoderLayer)
        self.last_attention = last.cross_attention_weights
        return self.out(h)  # type: ignore[no-any-return]

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Compute the logits of every target position with teacher forcing.

        Args:
            src: ``(B, S)`` source ids, padded with ``pad_id``.
            tgt_in: ``(B, T)`` ``bos_id`` followed by the target without its last token.

        Returns:
            Logits ``(B, T, tgt_vocab_size)``.
        """
        if src.ndim != 2 or tgt_in.ndim != 2 or src.shape[0] != tgt_in.shape[0]:
            raise ValueError(
                f"src and tgt_in must be (B, S) and (B, T) with one B, got {tuple(src.shape)} "
                f"and {tuple(tgt_in.shape)}"
            )
        memory, mask = self.encode(src)
        return self.decode(tgt_in, memory, mask)

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        """Generate each target token as the most likely one, until EOS or ``max_len``.

        Args:
            src: ``(B, S)`` source ids, padded with ``pad_id``.
            max_len: the most tokens to generate, > 0.

        Returns:
            ``(B, L)`` generated ids without BOS, ``L <= max_len``; after a row's EOS, PAD.
        """
        max_len = _validate.positive_int("max_len", max_len)
        if src.ndim != 2:
            raise ValueError(f"src must be (B, S), got {tuple(src.shape)}")
        memory, mask = self.encode(src)
        out = torch.full((src.shape[0], 1), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        for _ in range(max_len):
            step = self.decode(out, memory, mask)[:, -1].argmax(-1)  # (B,)
            step = step.masked_fill(done, self.pad_id)
            out = torch.cat([out, step[:, None]], dim=1)
            done |= step == self.eos_id
            if done.all():
                break
        return out[:, 1:]
