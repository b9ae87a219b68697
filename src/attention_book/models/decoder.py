"""A decoder-only language model built for generation: a KV cache and shared key/value heads.

:class:`DecoderLM` is :class:`attention_book.models.transformer.TransformerLM` rearranged for
inference. Its attention, :class:`GroupedQueryAttention`, has ``num_heads`` query heads but
only ``num_kv_heads`` key/value heads: ``num_kv_heads == num_heads`` is ordinary multi-head
attention (MHA), ``num_kv_heads == 1`` is multi-query attention (MQA, Shazeer 2019), and
anything in between is grouped-query attention (GQA, Ainslie et al. 2023). Positions are
rotary (RoPE), which rotate each query and key by its own position, so a token processed
later, after the cached ones, is placed correctly. ``forward(ids, caches)`` processes only
the new tokens when given one :class:`attention_book.efficient.KVCache` per layer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .. import _validate
from ..attention import causal_mask
from ..efficient import KVCache, repeat_kv
from ..positions import apply_rotary, rotary_embedding
from .transformer import FeedForward, TokenEmbedding

__all__ = ["DecoderLM", "GroupedQueryAttention"]


class GroupedQueryAttention(nn.Module):
    """Causal self-attention in which groups of query heads share one key/value head.

    Query head ``h`` reads key/value head ``h // (num_heads // num_kv_heads)``. Only the
    ``num_kv_heads`` key and value heads are computed and cached, so the cache is
    ``num_heads / num_kv_heads`` times smaller than with multi-head attention.

    Introduced in :ref:`sec-inference`.
    """

    def __init__(self, d_model: int, num_heads: int, num_kv_heads: int | None = None) -> None:
        """Create the query, key, value and output projections.

        Args:
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: query heads ``H``, > 0; each works in ``d_model / H`` dimensions.
            num_kv_heads: key/value heads, > 0, dividing ``num_heads``; ``None`` means
                ``num_heads`` (multi-head attention), 1 is multi-query attention.
        """
        super().__init__()
        d_model = _validate.positive_int("d_model", d_model)
        num_heads = _validate.positive_int("num_heads", num_heads)
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        num_kv_heads = _validate.positive_int("num_kv_heads", num_kv_heads)
        if d_model % num_heads:
            raise ValueError(
                f"d_model must be divisible by num_heads, got d_model={d_model}, "
                f"num_heads={num_heads}"
            )
        if num_heads % num_kv_heads:
            raise ValueError(
                f"num_heads must be divisible by num_kv_heads (each key/value head serves a "
                f"group of query heads), got num_heads={num_heads}, num_kv_heads={num_kv_heads}"
            )
        self.d_model, self.num_heads, self.num_kv_heads = d_model, num_heads, num_kv_heads
        self.d_head = d_model // num_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, num_kv_heads * self.d_head)  # smaller than q_proj
        self.v_proj = nn.Linear(d_model, num_kv_heads * self.d_head)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Let the new positions attend to themselves and to every cached position before them.

        Args:
            x: ``(B, N, d_model)``, the new positions.
            rotary: ``(cos, sin)``, each ``(N, d_head / 2)``, the rotary tables of the new
                positions (:func:`attention_book.positions.rotary_embedding`).
            cache: keys and values of the earlier positions; this call appends those of
                ``x``. ``None``: ``x`` is the whole sequence.

        Returns:
            ``(B, N, d_model)``.
        """
        q, k, v = self._project(x)
        q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)  # k, v: (B, H_kv, N, dh)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, H_kv, M, dh): the cached positions, then the new
        return self._merge(self._attend(q, k, v))

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project ``(B, N, d_model)`` to unrotated heads.

        Returns queries ``(B, H, N, dh)``, keys and values ``(B, H_kv, N, dh)``.
        """
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.d_head).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.num_kv_heads, self.d_head).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.num_kv_heads, self.d_head).transpose(1, 2)
        return q, k, v

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        """Concatenate the heads of ``(B, H, N, dh)`` and apply the output projection."""
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, self.d_model))  # type: ignore[no-any-return]

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal attention of ``(B, H, N, dh)`` queries, the last N of M positions."""
        (b, h, n, dh), m = q.shape, k.shape[-2]
        group = self.num_heads // self.num_kv_heads
        if n == 1:  # one new token sees every key: its group's query heads become the rows
            out = F.scaled_dot_product_attention(q.view(b, self.num_kv_heads, group, dh), k, v)
            return out.view(b, h, 1, dh)  # of one key/value head, and the cache is not copied
        k, v = repeat_kv(k, group), repeat_kv(v, group)  # (B, H, M, dh)
        if n == m:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        mask = causal_mask(n, m, device=q.device)  # (N, M): new positions after cached ones
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _attention_module(attention: Callable[[int], nn.Module], layer: int) -> nn.Module:
    """Call ``attention(layer)`` and check that it made a module."""
    module = attention(layer)
    if not isinstance(module, nn.Module):
        raise TypeError(f"attention({layer}) must return an nn.Module, got {type(module).__name__}")
    return module


class _DecoderBlock(nn.Module):
    """Pre-LN block: ``x + attention(LN(x))``, then ``x + feed_forward(LN(x))``."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        num_kv_heads: int,
        d_ff: int,
        dropout: float,
        attn: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model)
        if attn is None:
            attn = GroupedQueryAttention(d_model, num_heads, num_kv_heads)
        self.attn = attn
        self.ff_norm = nn.LayerNorm(d_model)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor], cache: KVCache | None
    ) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.attn_norm(x), rotary, cache))
        return x + self.dropout(self.feed_forward(self.ff_norm(x)))  # type: ignore[no-any-return]


class DecoderLM(nn.Module):
    """A decoder-only language model with rotary positions, shared key/value heads and a cache.

    ``model(ids)`` predicts the next token at every position; ``model(ids, caches)`` does
    the same for ``ids`` placed after the positions already in ``caches`` (one
    :class:`attention_book.efficient.KVCache` per layer, from :meth:`new_caches`), and
    appends their keys and values. :meth:`generate` decodes greedily, with or without a
    cache; both give the same tokens.

    Introduced in :ref:`sec-inference`.
    """

    rotary_cos: torch.Tensor  # (max_len, head_dim / 2), a buffer: moves with the model
    rotary_sin: torch.Tensor

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        num_heads: int = 8,
        num_kv_heads: int | None = None,
        num_layers: int = 2,
        d_ff: int = 256,
        max_len: int = 128,
        dropout: float = 0.0,
        attention: Callable[[int], nn.Module] | None = None,
    ) -> None:
        """Create the embedding, the blocks, the output layer and the rotary tables.

        Args:
            vocab_size: number of token ids, > 0.
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``, with an
                even head size ``d_model / num_heads`` (rotary positions rotate pairs).
            num_heads: query heads per layer, > 0.
            num_kv_heads: key/value heads per layer, > 0, dividing ``num_heads``; ``None``
                means ``num_heads`` (MHA), 1 is MQA, anything between GQA.
            num_layers: blocks, > 0.
            d_ff: hidden size of the feed-forward layers, > 0.
            max_len: the longest sequence, prompt and generated tokens together, > 0.
            dropout: dropout probability on each residual branch, in ``[0, 1)``.
            attention: builds layer ``i``'s attention, ``attention(i)``, in place of
                :class:`GroupedQueryAttention` (chapter 7 swaps in latent, windowed and sink
                attention this way). The module is called as ``attn(x, rotary, cache)`` like
                :meth:`GroupedQueryAttention.forward`; it may set ``rotary_dim`` (the even size
                of the rotary tables it wants, default the head size ``d_model / num_heads``)
                and define ``new_cache(max_len)`` returning a
                :class:`attention_book.efficient.KVCache` (or a subclass) for
                :meth:`new_caches`.
        """
        super().__init__()
        self.max_len = _validate.positive_int("max_len", max_len)
        num_layers = _validate.positive_int("num_layers", num_layers)
        self.embed = TokenEmbedding(vocab_size, d_model, max_len, "rope", dropout, None)
        kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if attention is not None and not callable(attention):
            raise TypeError(
                f"attention must be a callable layer_index -> nn.Module, got "
                f"{type(attention).__name__}"
            )
        self.blocks = nn.ModuleList(
            _DecoderBlock(
                d_model,
                num_heads,
                kv_heads,
                d_ff,
                dropout,
                None if attention is None else _attention_module(attention, i),
            )
            for i in range(num_layers)
        )
        if d_model % num_heads:
            raise ValueError(
                f"d_model must be divisible by num_heads, got d_model={d_model}, "
                f"num_heads={num_heads}"
            )
        self.num_heads, self.num_kv_heads = num_heads, kv_heads
        self.head_dim = d_model // num_heads
        rotary_dims = {getattr(block.attn, "rotary_dim", self.head_dim) for block in self.blocks}
        if len(rotary_dims) != 1:
            raise ValueError(f"every layer must want the same rotary_dim, got {rotary_dims}")
        self.rotary_dim = rotary_dims.pop()
        if not isinstance(self.rotary_dim, int) or self.rotary_dim <= 0 or self.rotary_dim % 2:
            raise ValueError(
                f"rotary positions need an even head size (rotary_dim), got {self.rotary_dim}"
            )
        self.final_norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, vocab_size)
        cos, sin = rotary_embedding(max_len, self.rotary_dim)  # (max_len, rotary_dim / 2) each
        self.register_buffer("rotary_cos", cos, persistent=False)
        self.register_buffer("rotary_sin", sin, persistent=False)

    @property
    def num_layers(self) -> int:
        """Number of blocks, each with its own cache."""
        return len(self.blocks)

    def new_caches(self, max_len: int | None = None) -> list[KVCache]:
        """Make one empty cache per layer, for one batch of sequences.

        Args:
            max_len: the most positions each cache will hold, > 0; ``None`` means the model's
                ``max_len``. The storage is allocated at the first forward pass.

        Returns:
            A list of ``num_layers`` :class:`attention_book.efficient.KVCache`.
        """
        length = self.max_len if max_len is None else max_len
        caches = []
        for block in self.blocks:
            new_cache = getattr(block.attn, "new_cache", None)
            caches.append(KVCache(length) if new_cache is None else new_cache(length))
        return caches

    def forward(self, ids: torch.Tensor, caches: list[KVCache] | None = None) -> torch.Tensor:
        """Predict the next token at every new position, each seeing only its past.

        Args:
            ids: ``(B, N)`` token ids in ``[0, vocab_size)``, ``N >= 1``.
            caches: one cache per layer, all holding the same ``P`` earlier positions (0 for
                new caches); ``ids`` then sit at positions ``P .. P + N - 1`` and their keys
                and values are appended. ``None``: ``ids`` is the whole sequence.

        Returns:
            Logits ``(B, N, vocab_size)``.
        """
        start = self._cached_length(caches)
        x = self.embed(ids)  # checks the ids; rotary positions add no codes here
        n = ids.shape[1]
        if n == 0 or start + n > self.max_len:
            raise ValueError(
                f"ids must hold at least one position and fit after the {start} cached ones "
                f"within max_len={self.max_len}, got {n}"
            )
        rotary = (self.rotary_cos[start : start + n], self.rotary_sin[start : start + n])
        for i, block in enumerate(self.blocks):
            x = block(x, rotary, None if caches is None else caches[i])
        return self.out(self.final_norm(x))  # type: ignore[no-any-return]

    def _cached_length(self, caches: object) -> int:
        if caches is None:
            return 0
        if (
            not isinstance(caches, (list, tuple))
            or len(caches) != self.num_layers
            or not all(isinstance(c, KVCache) for c in caches)
        ):
            raise TypeError(
                f"caches must be a list of {self.num_layers} KVCache (one per layer, from "
                f"new_caches()), got {type(caches).__name__}"
            )
        lengths = {int(c.length) for c in caches}
        if len(lengths) != 1:
            raise ValueError(f"every layer's cache must hold as many positions, got {lengths}")
        return lengths.pop()

    @torch.no_grad()
    def generate(
        self, prompt: torch.Tensor, new_tokens: int, use_cache: bool = True
    ) -> torch.Tensor:
        """Extend ``prompt`` greedily, each new token the most likely one.

        With the cache, the prompt is processed once (the prefill) and every later step
        feeds the model one token; without it, every step runs the model over the whole
        sequence so far. The tokens are the same.

        Args:
            prompt: ``(B, N)`` token ids, ``N >= 1``.
            new_tokens: tokens to add, > 0; ``N + new_tokens <= max_len``.
            use_cache: keep the keys and values of earlier positions instead of recomputing.

        Returns:
            ``(B, N + new_tokens)`` ids, the prompt first.
        """
        new_tokens = _validate.positive_int("new_tokens", new_tokens)
        if not isinstance(use_cache, bool):
            raise TypeError(f"use_cache must be a bool, got {type(use_cache).__name__}")
        if not isinstance(prompt, torch.Tensor) or prompt.ndim != 2 or prompt.shape[1] == 0:
            got = tuple(prompt.shape) if isinstance(prompt, torch.Tensor) else type(prompt)
            raise ValueError(f"prompt must be (B, N) token ids with N >= 1, got {got}")
        total = prompt.shape[1] + new_tokens
        if total > self.max_len:
            raise ValueError(
                f"prompt ({prompt.shape[1]} tokens) and new_tokens ({new_tokens}) make {total} "
                f"positions, more than max_len={self.max_len}"
            )
        caches = self.new_caches(total) if use_cache else None
        ids = prompt
        logits = self(prompt, caches)[:, -1]  # (B, V); with a cache, the prefill
        for step in range(new_tokens):
            token = logits.argmax(-1, keepdim=True)  # (B, 1)
            ids = torch.cat([ids, token], dim=1)
            if step + 1 < new_tokens:  # the last token needs no forward pass
                logits = (self(ids) if caches is None else self(token, caches))[:, -1]
        return ids
