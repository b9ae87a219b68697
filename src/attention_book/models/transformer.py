"""The Transformer, read top to bottom: blocks, encoder, decoder, embeddings, and two models.

Every attention here is :class:`attention_book.attention.MultiHeadAttention`; there is no
second implementation. Masks follow the package's convention: True where a query may attend.
Position schemes come from :mod:`attention_book.positions`: absolute codes are added by
:class:`TokenEmbedding`, relative ones (``"rope"``, ``"alibi"``) act inside every
self-attention of the layers built with ``positions=...``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from .. import _validate
from ..attention import MultiHeadAttention, causal_mask
from ..positions import alibi_bias, rotary_embedding, sinusoidal_positions

__all__ = [
    "Decoder",
    "DecoderLayer",
    "Encoder",
    "EncoderLayer",
    "FeedForward",
    "Seq2SeqTransformer",
    "TokenEmbedding",
    "TransformerLM",
    "sinusoidal_positions",
]

Activation = Literal["relu", "gelu"]
#: Every position scheme of a model: absolute codes added to the embeddings ("sinusoidal",
#: "learned"), relative ones inside the attention ("rope", "alibi"), or none at all.
Positions = Literal["sinusoidal", "learned", "rope", "alibi", "none"]
#: The schemes that act inside a layer's self-attention.
AttentionPositions = Literal["rope", "alibi", "none"]


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


def stack_weights(weights: list[object]) -> torch.Tensor:
    """Stack the attention weights that each layer kept from the last forward pass."""
    tensors = [w for w in weights if isinstance(w, torch.Tensor)]
    if len(tensors) < len(weights):
        raise RuntimeError("no attention weights yet: run a forward pass first")
    return torch.stack(tensors)


class Encoder(nn.Module):
    """A stack of encoder layers (with a final LayerNorm when pre-LN).

    Introduced in :ref:`sec-transformer-block`.
    """

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
        """Create ``num_layers`` identical (but separately parametrised) encoder layers.

        Args:
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: attention heads per layer, > 0.
            num_layers: layers, > 0.
            d_ff: hidden size of each feed-forward layer, > 0.
            dropout: dropout on each residual branch, in ``[0, 1)``.
            norm_first: pre-LN when True (then a final LayerNorm follows the stack),
                post-LN when False.
            activation: the feed-forward nonlinearity, ``"relu"`` or ``"gelu"``.
            eps: LayerNorm's epsilon, > 0.
            positions: ``"rope"``, ``"alibi"`` or ``"none"`` in every layer's self-attention,
                as in :class:`EncoderLayer`.
        """
        super().__init__()
        num_layers = _validate.positive_int("num_layers", num_layers)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, num_heads, d_ff, dropout, norm_first, activation, eps, positions)
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model, eps=eps) if norm_first else nn.Identity()

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


class Decoder(nn.Module):
    """A stack of decoder layers (with a final LayerNorm when pre-LN).

    Introduced in :ref:`sec-transformer-block`.
    """

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
        """Create ``num_layers`` decoder layers.

        Args:
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: attention heads per attention, > 0.
            num_layers: layers, > 0.
            d_ff: hidden size of each feed-forward layer, > 0.
            dropout: dropout on each residual branch, in ``[0, 1)``.
            norm_first: pre-LN when True (then a final LayerNorm follows), post-LN when False.
            activation: the feed-forward nonlinearity, ``"relu"`` or ``"gelu"``.
            eps: LayerNorm's epsilon, > 0.
            positions: ``"rope"``, ``"alibi"`` or ``"none"`` in every layer's causal
                self-attention, as in :class:`DecoderLayer`.
        """
        super().__init__()
        num_layers = _validate.positive_int("num_layers", num_layers)
        self.layers = nn.ModuleList(
            DecoderLayer(d_model, num_heads, d_ff, dropout, norm_first, activation, eps, positions)
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(d_model, eps=eps) if norm_first else nn.Identity()

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


class TransformerLM(nn.Module):
    """A decoder-only language model: causal self-attention blocks and a next-token head.

    Introduced in :ref:`sec-bottleneck`.
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


def _dropout(p: float) -> float:
    if not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"dropout must be a probability in [0, 1), got {p!r}")
    return float(p)


def _check_ids(name: str, ids: torch.Tensor, vocab_size: int, max_len: int) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.ndim != 2:
        got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids)
        raise ValueError(f"{name} must be a (B, N) tensor of torch.long token ids, got {got}")
    if ids.shape[1] > max_len:
        raise ValueError(f"{name} has {ids.shape[1]} positions, more than max_len={max_len}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(
            f"{name} must lie in [0, vocab_size={vocab_size}), got ids from {int(ids.min())} "
            f"to {int(ids.max())}"
        )


def _attention_positions(positions: object, d_head: int) -> AttentionPositions:
    if positions not in ("rope", "alibi", "none"):
        raise ValueError(
            f"positions of a layer must be 'rope', 'alibi' or 'none', got {positions!r} "
            "(absolute codes are added by TokenEmbedding)"
        )
    if positions == "rope" and d_head % 2:
        raise ValueError(f"positions='rope' needs an even head size, got d_head={d_head}")
    return positions


def _inside(positions: Positions) -> AttentionPositions:
    """The part of a model's position scheme that acts inside the attention."""
    return positions if positions in ("rope", "alibi") else "none"


def _position_terms(
    positions: AttentionPositions, attn: MultiHeadAttention, x: torch.Tensor
) -> tuple[torch.Tensor | None, tuple[torch.Tensor, torch.Tensor] | None]:
    """The ALiBi bias or the rotary tables for self-attention over ``x`` ``(B, N, d_model)``."""
    n = x.shape[1]
    if positions == "alibi":
        return alibi_bias(n, attn.num_heads, device=x.device, dtype=x.dtype), None  # (H, N, N)
    if positions == "rope":
        return None, rotary_embedding(n, attn.d_head, device=x.device, dtype=x.dtype)
    return None, None
