"""Local and global layers: sliding-window attention in most layers, full attention in a few.

A **local** layer lets each position see only the ``window`` most recent positions (its own
included), so at inference it needs the keys and values of those ``window`` positions and no
more: a rolling buffer, as in Mistral 7B. A **global** layer sees every earlier position and
keeps them all. Models such as Gemma 2 (one global layer in two) and Gemma 3 (one in six) mix
the two: :func:`layer_windows` gives each layer's window for such a pattern,
:func:`hybrid_cache_bytes` what the cache of the whole stack costs, :func:`receptive_field` how
far back the last layer can hear, and :class:`WindowedAttention` with :class:`RollingKVCache`
plugs a window into :class:`attention_book.models.decoder.DecoderLM` (its ``attention=``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.nn import functional as F

from .. import _validate
from ..efficient import (
    KVCache,
    kv_cache_bytes,
    repeat_kv,
    sliding_window_attention,
    sparse_attention_mask,
)
from ..models.decoder import GroupedQueryAttention

# Below this many scores per head a dense mask is faster than the blockwise window.
_DENSE_SCORES = 1 << 16

__all__ = [
    "RollingKVCache",
    "WindowedAttention",
    "hybrid_cache_bytes",
    "layer_windows",
    "receptive_field",
]


def _window(value: object, name: str = "window") -> int | None:
    """``None`` (global) or an int > 0 (local)."""
    return None if value is None else _validate.positive_int(name, value)


def layer_windows(
    num_layers: int, window: int, global_every: int | None = None
) -> list[int | None]:
    """Give each layer of a local/global stack its window: ``None`` for a global layer.

    Layer ``i`` (from 0) is global when ``(i + 1) % global_every == 0``, so the stack starts
    with local layers and ends each group with a global one, as Gemma 2 (``global_every=2``)
    and Gemma 3 (``global_every=6``) do; ``global_every=1`` makes every layer global and
    ``None`` none (Mistral 7B).

    Args:
        num_layers: layers, > 0.
        window: positions a local layer sees, its own included, > 0.
        global_every: one global layer in this many, > 0; ``None``: no global layer.

    Returns:
        A list of ``num_layers`` entries, ``window`` or ``None``.

    Introduced in :ref:`sec-local-global`.
    """
    num_layers = _validate.positive_int("num_layers", num_layers)
    window = _validate.positive_int("window", window)
    every = _window(global_every, "global_every")
    return [
        None if every is not None and (i + 1) % every == 0 else window for i in range(num_layers)
    ]


def hybrid_cache_bytes(
    num_layers: int,
    num_kv_heads: int,
    head_dim: int,
    length: int,
    window: int,
    global_every: int | None = None,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
) -> int:
    """Count the bytes of the keys and values a local/global stack caches.

    A global layer keeps all ``length`` positions; a local layer keeps a rolling buffer of
    ``min(window, length)``. Each kept position costs a key and a value of ``head_dim``
    numbers per key/value head, as in :func:`attention_book.efficient.kv_cache_bytes`.

    Args:
        num_layers: layers, > 0, split into local and global by :func:`layer_windows`.
        num_kv_heads: key/value heads per layer, > 0.
        head_dim: size of each key and value vector, > 0.
        length: positions of each sequence so far, > 0.
        window: positions a local layer sees, its own included, > 0.
        global_every: one global layer in this many, > 0; ``None``: no global layer.
        batch_size: sequences, > 0.
        dtype: the dtype of the cached tensors.

    Returns:
        The size in bytes, as an int.

    Introduced in :ref:`sec-local-global`.
    """
    length = _validate.positive_int("length", length)
    windows = layer_windows(num_layers, window, global_every)
    kept = sum(length if w is None else min(w, length) for w in windows)  # positions, all layers
    return kv_cache_bytes(1, num_kv_heads, head_dim, kept, batch_size, dtype)


def receptive_field(windows: Sequence[int | None]) -> float:
    """How far back the last layer of a causal stack can hear, in positions.

    A local layer of window ``w`` moves information ``w - 1`` positions forward (a query sees
    itself and the ``w - 1`` positions before it), so ``L`` local layers reach
    ``sum(w - 1)`` positions back; one global layer reaches every earlier position.

    Args:
        windows: each layer's window, ``None`` for a global layer (as :func:`layer_windows`
            gives), at least one layer.

    Returns:
        The largest distance between a position and one it can hear from, ``math.inf`` when
        some layer is global.

    Introduced in :ref:`sec-local-global`.
    """
    if isinstance(windows, (str, bytes)) or not isinstance(windows, Sequence) or not windows:
        raise TypeError(f"windows must be a non-empty sequence of ints or None, got {windows!r}")
    checked = [_window(w, f"windows[{i}]") for i, w in enumerate(windows)]
    if any(w is None for w in checked):
        return math.inf
    return float(sum(w - 1 for w in checked if w is not None))


class RollingKVCache(KVCache):
    """Keys and values of the last ``window`` positions only, in a buffer that wraps around.

    Position ``p`` is stored in slot ``p % window`` (Mistral 7B's rolling buffer cache), so
    the storage stops growing once ``window`` positions have been seen; ``length`` still
    counts every position processed, which is where the next one starts.

    Introduced in :ref:`sec-local-global`.
    """

    def __init__(self, window: int, max_len: int | None = None) -> None:
        """Create an empty rolling cache.

        Args:
            window: positions a query sees, its own included, > 0.
            max_len: the most positions the sequence will have, > 0; ``None`` means no
                limit. Only ``min(window, max_len)`` slots are allocated.
        """
        self.window = _validate.positive_int("window", window)
        limit = None if max_len is None else _validate.positive_int("max_len", max_len)
        super().__init__(window if limit is None else min(window, limit))
        self.limit = limit

    @property
    def held(self) -> int:
        """Positions currently in the buffer, ``min(length, slots)``."""
        return min(self.length, self.max_len)

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new keys and values; return the ones a window over them needs.

        Args:
            k: keys of the new positions ``(..., n_new, d)``.
            v: values ``(..., n_new, d_v)``, with the leading dims of ``k``.

        Returns:
            ``(keys, values)``: the (up to ``window - 1``) positions before the new ones,
            oldest first, then the new ones: ``(..., m, d)`` and ``(..., m, d_v)``, new
            tensors. The new queries are the last ``n_new`` of these ``m`` positions.
        """
        k, v = self._check_and_allocate(k, v)  # storage of max_len = slots positions
        assert self._keys is not None and self._values is not None
        new, slots = k.shape[-2], self.max_len
        if self.limit is not None and self.length + new > self.limit:
            raise ValueError(
                f"the cache was made for max_len={self.limit} positions; {self.length} are "
                f"cached and {new} more do not fit"
            )
        before = min(self.length, self.window - 1)  # earlier positions the new ones may see
        old = torch.arange(self.length - before, self.length, device=k.device) % slots
        keys = torch.cat([self._keys[..., old, :], k], dim=-2)  # (..., before + new, d)
        values = torch.cat([self._values[..., old, :], v], dim=-2)
        kept = min(new, slots)  # only the last `slots` new positions survive
        slot = torch.arange(self.length + new - kept, self.length + new, device=k.device) % slots
        self._keys[..., slot, :] = k[..., new - kept :, :]
        self._values[..., slot, :] = v[..., new - kept :, :]
        self.length += new
        return keys, values


class WindowedAttention(GroupedQueryAttention):
    """Grouped-query attention in which each position sees only the last ``window`` positions.

    ``window=None`` is a global layer, exactly
    :class:`~attention_book.models.decoder.GroupedQueryAttention`. With a window, query ``p``
    sees positions ``p - window + 1 .. p``. Training and short sequences use a dense mask
    (:func:`attention_book.efficient.sparse_attention_mask`), inference over more than 65,536
    scores per head the blockwise :func:`attention_book.efficient.sliding_window_attention`;
    :meth:`new_cache` makes a :class:`RollingKVCache` of ``window`` positions. Pass it to
    :class:`attention_book.models.decoder.DecoderLM` as ``attention=lambda i:
    WindowedAttention(d_model, num_heads, window=windows[i])``.

    Introduced in :ref:`sec-local-global`.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        window: int | None = None,
    ) -> None:
        """Create the projections of a local (``window``) or global (``None``) layer.

        Args:
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: query heads, > 0.
            num_kv_heads: key/value heads, > 0, dividing ``num_heads``; ``None``: ``num_heads``.
            window: positions a query sees, its own included, > 0; ``None``: every earlier one.
        """
        window = _window(window)
        super().__init__(d_model, num_heads, num_kv_heads)
        self.window = window

    def new_cache(self, max_len: int) -> KVCache:
        """Make this layer's cache: a rolling buffer of ``window`` positions, or a full one.

        Args:
            max_len: the most positions of the sequence, > 0.

        Returns:
            A :class:`RollingKVCache` for a local layer, a
            :class:`attention_book.efficient.KVCache` for a global one.
        """
        if self.window is None:
            return KVCache(max_len)
        return RollingKVCache(self.window, max_len)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Causal windowed attention of ``(B, H, N, dh)`` queries, the last N of M positions."""
        if self.window is None:
            return super()._attend(q, k, v)
        group = self.num_heads // self.num_kv_heads
        k, v = repeat_kv(k, group), repeat_kv(v, group)  # (B, H, M, dh)
        n, m = q.shape[-2], k.shape[-2]
        training = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
        if training or n * m <= _DENSE_SCORES:
            # small, or needing a backward (the blockwise kernel has none): a dense mask
            mask = sparse_attention_mask(n, self.window, m=m, device=q.device)  # (N, M)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return sliding_window_attention(q, k, v, self.window)  # (B, H, N, dh)
