"""Attention sinks and streaming: a cache that keeps the first tokens and a recent window.

A language model trained on short sequences puts much of its attention on the first token,
whatever it is: an **attention sink** (Xiao et al., 2024). To stream past the training length,
:class:`SinkCache` keeps the keys and values of the first ``num_sinks`` tokens and of the last
``window`` ones, evicting the oldest others, and :class:`SinkAttention` rotates the cached keys
(stored before rotation) by their index *in the cache*, so positions never grow past what the
model saw in training. ``num_sinks=0`` is the plain rolling cache that fails.
:func:`softmax_with_sink` adds a learned "nothing" column to the softmax instead, as recent
open models do; :func:`copy_stream` draws the seeded text the page trains on.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import _validate
from ..attention import causal_mask
from ..data import BOS_ID, SPECIALS
from ..efficient import KVCache, repeat_kv
from ..models.decoder import GroupedQueryAttention
from ..positions import apply_rotary, rotary_embedding

__all__ = ["SinkAttention", "SinkCache", "copy_stream", "softmax_with_sink"]


def _count(name: str, value: object, minimum: int) -> int:
    """Return the int ``value`` if it is at least ``minimum``; else raise, naming it."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def softmax_with_sink(scores: torch.Tensor, sink_logit: torch.Tensor | float) -> torch.Tensor:
    """Softmax over the last dim with one extra logit, a "sink" column that is then dropped.

    ``w_j = exp(s_j) / (exp(sink) + sum_k exp(s_k))``: the weights sum to less than one, and
    what is missing went to a value of zero ("attend to nothing"). ``sink_logit = -inf`` is
    the ordinary softmax; a fixed ``0`` is the "softmax plus one" of Evan Miller's blog post.
    Fully masked rows (all ``-inf``) get zero weights instead of NaN.

    Args:
        scores: ``(..., M)`` logits, ``-inf`` where masked.
        sink_logit: a number, or a tensor that broadcasts to ``(..., 1)``, e.g. one logit per
            head ``(H, 1, 1)`` for scores ``(B, H, N, M)``.

    Returns:
        Weights ``(..., M)``, each row summing to ``1 - (the sink's share)``.

    Introduced in :ref:`sec-attention-sinks`.
    """
    scores = _validate.tensor("scores", scores)
    want = (*scores.shape[:-1], 1)
    if isinstance(sink_logit, torch.Tensor):
        if not _validate.broadcasts_to(sink_logit.shape, want):
            raise ValueError(
                f"sink_logit must broadcast to {want} (one logit per row of scores "
                f"{tuple(scores.shape)}), got {tuple(sink_logit.shape)}"
            )
        sink = sink_logit.to(scores.dtype).expand(want)
    elif isinstance(sink_logit, (int, float)) and not isinstance(sink_logit, bool):
        sink = scores.new_full(want, float(sink_logit))
    else:
        raise TypeError(f"sink_logit must be a number or a tensor, got {type(sink_logit).__name__}")
    both = torch.cat([scores, sink], dim=-1)  # (..., M + 1): the sink is the last column
    top = both.amax(dim=-1, keepdim=True).detach()
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # all -inf: no shift
    e = torch.exp(both - top)  # (..., M + 1)
    total = e.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, e / total.clamp_min(torch.finfo(e.dtype).tiny), e)[..., :-1]


class SinkCache(KVCache):
    """A KV cache that keeps the first ``num_sinks`` tokens and the last ``window`` tokens.

    Once ``num_sinks + window`` positions are held, each new token evicts the oldest token
    that is not a sink. ``num_sinks=0`` is a rolling cache of the last ``window`` tokens.
    ``length`` is the number of positions held, so a
    :class:`~attention_book.models.decoder.DecoderLM` places a new token at its index in the
    cache; :class:`SinkAttention` stores the keys before rotation and rotates them by their
    index in the cache. ``positions``
    lists where in the stream each cached token came from.

    Introduced in :ref:`sec-attention-sinks`.
    """

    def __init__(self, num_sinks: int, window: int) -> None:
        """Create an empty cache.

        Args:
            num_sinks: first tokens kept for ever, >= 0 (Xiao et al. keep 4).
            window: most recent tokens kept, >= 1 (the new token included).
        """
        self.num_sinks = _count("num_sinks", num_sinks, 0)
        self.window = _count("window", window, 1)
        super().__init__(self.num_sinks + self.window)
        self.positions: list[int] = []  # stream position of each cached token, in order
        self.seen = 0  # tokens that went through the cache

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new keys and values, evicting the oldest non-sink token if the cache is full.

        Args:
            k: keys of the new positions ``(..., n_new, d)``, before rotation. Only one at a
                time once the cache is full (a chunk that needs an eviction is refused).
            v: values ``(..., n_new, d_v)``.

        Returns:
            ``(keys, values)``: ``(..., length, d)`` and ``(..., length, d_v)``, sinks first,
            then the window in stream order; views valid until the next update.
        """
        new = _validate.tensor("k", k, min_ndim=2).shape[-2]
        if self.length + new > self.max_len:
            if new != 1:
                raise ValueError(
                    f"k must hold one position at a time once the cache needs evicting: it "
                    f"holds {self.length} of {self.max_len}, got k {tuple(k.shape)}"
                )
            if self._keys is not None and self._values is not None:
                s, end = self.num_sinks, self.length  # slide the window left by one
                self._keys[..., s : end - 1, :] = self._keys[..., s + 1 : end, :].clone()
                self._values[..., s : end - 1, :] = self._values[..., s + 1 : end, :].clone()
            self.length -= 1
            del self.positions[self.num_sinks]
        keys, values = super().update(k, v)
        self.positions.extend(range(self.seen, self.seen + new))
        self.seen += new
        return keys, values

    def reset(self) -> None:
        """Forget every cached position, keeping the storage for the next stream."""
        super().reset()
        self.positions, self.seen = [], 0


class SinkAttention(GroupedQueryAttention):
    """Grouped-query attention for streaming, with an optional learned sink logit per head.

    Without a cache, or with a plain :class:`~attention_book.efficient.KVCache`, it computes
    what :class:`~attention_book.models.decoder.GroupedQueryAttention` does (the same weights
    fit both). With a :class:`SinkCache` it caches keys *before* rotation and rotates them by
    their index in the cache, the new queries by theirs. With ``learned_sink=True`` every head
    has a learned logit ``sink_logit[h]``, an extra column of its softmax whose value is zero
    (:func:`softmax_with_sink`). Set ``keep_weights = True`` to keep the last weights in
    ``weights``. Use it in a model with ``DecoderLM(..., attention=lambda i:
    SinkAttention(...))``.

    Introduced in :ref:`sec-attention-sinks`.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        learned_sink: bool = False,
    ) -> None:
        """Create the projections and, with ``learned_sink``, one sink logit per head (zero).

        Args:
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: query heads ``H``, > 0.
            num_kv_heads: key/value heads, dividing ``num_heads``; ``None``: ``num_heads``.
            learned_sink: add a learned "nothing" logit to every head's softmax.
        """
        super().__init__(d_model, num_heads, num_kv_heads)
        if not isinstance(learned_sink, bool):
            raise TypeError(f"learned_sink must be a bool, got {type(learned_sink).__name__}")
        self.sink_logit = nn.Parameter(torch.zeros(num_heads)) if learned_sink else None
        self.keep_weights = False
        self.weights: torch.Tensor | None = None  # (B, H, N, M) when keep_weights

    def new_cache(self, max_len: int) -> KVCache:
        """Make the plain cache that ``DecoderLM.new_caches`` asks for (no eviction).

        Args:
            max_len: the most positions it will hold, > 0.

        Returns:
            An empty :class:`~attention_book.efficient.KVCache`; pass :class:`SinkCache`
            objects to the model yourself to stream.
        """
        return KVCache(max_len)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Attend from the new positions to themselves and to the cached ones.

        Args:
            x: ``(B, N, d_model)``, the new positions.
            rotary: ``(cos, sin)``, each ``(N, d_head / 2)``, the tables of the new positions;
                with a :class:`SinkCache` the positions come from the cache instead.
            cache: ``None``, a :class:`~attention_book.efficient.KVCache` or a
                :class:`SinkCache`; this call appends the keys and values of ``x``.

        Returns:
            ``(B, N, d_model)``.
        """
        q, k, v = self._project(x)  # (B, H, N, dh) and (B, H_kv, N, dh), not rotated yet
        n = x.shape[1]
        if isinstance(cache, SinkCache):
            k, v = cache.update(k, v)  # (B, H_kv, M, dh), unrotated: sinks, then the window
            m = k.shape[-2]
            cos, sin = rotary_embedding(m, self.d_head, device=x.device, dtype=x.dtype)
            k, q = apply_rotary(k, cos, sin), apply_rotary(q, cos[m - n :], sin[m - n :])
        else:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
            if cache is not None:
                k, v = cache.update(k, v)
        return self._merge(self._attend(q, k, v))

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal attention of ``(B, H, N, dh)`` queries, the last N of M positions."""
        group = self.num_heads // self.num_kv_heads
        k, v = repeat_kv(k, group), repeat_kv(v, group)  # (B, H, M, dh)
        n, m = q.shape[-2], k.shape[-2]
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, H, N, M)
        scores = scores.masked_fill(~causal_mask(n, m, device=q.device), -math.inf)
        if self.sink_logit is None:
            weights = torch.softmax(scores, dim=-1)
        else:
            weights = softmax_with_sink(scores, self.sink_logit.view(-1, 1, 1))
        if self.keep_weights:
            self.weights = weights.detach()
        return weights @ v


def copy_stream(
    num_sequences: int,
    length: int,
    vocab_size: int = 40,
    rate: float = 0.1,
    lag: int = 2,
    seed: int | torch.Generator = 0,
) -> torch.Tensor:
    """Draw seeded text of random words in which a marker asks for a copy, after a BOS token.

    Every token is a word drawn uniformly from ``4 .. vocab_size - 1``, except that with
    probability ``rate`` (and never within ``lag + 1`` tokens of the start or of the last
    marker) it is the marker ``3``, and the token after a marker repeats the word ``lag``
    places before the marker. Only that copied token can be predicted, and only by a head
    that attends back ``lag + 1`` places: most of the time an attention head has nothing to
    do, the situation in which attention sinks form.

    Args:
        num_sequences: rows, > 0.
        length: tokens per row after the BOS, > 0.
        vocab_size: ids, the specials ``PAD, BOS, EOS`` and the marker included, > 5.
        rate: probability of a marker where one may go, in ``(0, 1)``.
        lag: the copied word stands ``lag`` places before its marker, > 0.
        seed: an int or a ``torch.Generator``.

    Returns:
        ``(num_sequences, 1 + length)`` long ids: ``BOS_ID``, then words and markers.

    Introduced in :ref:`sec-attention-sinks`.
    """
    rows = _validate.positive_int("num_sequences", num_sequences)
    length = _validate.positive_int("length", length)
    lag = _validate.positive_int("lag", lag)
    vocab_size = _count("vocab_size", vocab_size, len(SPECIALS) + 3)
    rate = _validate.positive("rate", rate)
    if rate >= 1:
        raise ValueError(f"rate must be < 1, got {rate}")
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    marker = len(SPECIALS)
    out = torch.randint(marker + 1, vocab_size, (rows, 1 + length), generator=gen)
    draws = torch.rand(rows, 1 + length, generator=gen)
    out[:, 0] = BOS_ID
    since = torch.full((rows,), -1)  # tokens since the start or the last copy
    for t in range(1, length + 1):
        after = out[:, t - 1] == marker
        if after.any():  # the token after a marker: the word lag places before the marker
            out[after, t] = out[after, t - 1 - lag]
        put = ~after & (since >= lag) & (draws[:, t] < rate)
        out[put, t] = marker
        since = torch.where(put, torch.full_like(since, -2), since + 1)
    return out
