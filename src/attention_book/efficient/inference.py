"""Generation one token at a time: the key-value cache, and key/value heads shared by queries."""

from __future__ import annotations

import torch

from .. import _validate

__all__ = ["KVCache", "kv_cache_bytes", "repeat_kv"]


class KVCache:
    """Keys and values of the positions a decoder has already processed, grown in place.

    Storage for ``max_len`` positions is allocated at the first :meth:`update`; each update
    writes the new positions after the old ones and returns views of everything so far, so
    a decoding step computes keys and values for its new token only.

    Introduced in :ref:`sec-quadratic-wall`, explained in :ref:`sec-inference`.
    """

    def __init__(self, max_len: int) -> None:
        """Create an empty cache.

        Args:
            max_len: the most positions it will hold, > 0.
        """
        self.max_len = _validate.positive_int("max_len", max_len)
        self.length = 0
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new keys and values; return all cached ones.

        Args:
            k: keys of the new positions ``(..., n_new, d)``.
            v: values ``(..., n_new, d_v)``, with the leading dims of ``k``.

        Returns:
            ``(keys, values)``: ``(..., length, d)`` and ``(..., length, d_v)``, views into the
            cache, valid until the next update.
        """
        k, v = self._check_and_allocate(k, v)
        assert self._keys is not None and self._values is not None  # allocated above
        new = k.shape[-2]
        if self.length + new > self.max_len:
            raise ValueError(
                f"the cache holds max_len={self.max_len} positions; {self.length} are cached "
                f"and {new} more do not fit"
            )
        self._keys[..., self.length : self.length + new, :] = k
        self._values[..., self.length : self.length + new, :] = v
        self.length += new
        return self._keys[..., : self.length, :], self._values[..., : self.length, :]

    def _check_and_allocate(
        self, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Check new keys and values against each other and the cache; allocate at the first.

        The storage is ``max_len`` slots per leading index; subclasses that keep fewer
        positions (a rolling buffer) set ``max_len`` to their number of slots.
        """
        k = _validate.tensor("k", k, min_ndim=2)
        v = _validate.tensor("v", v, min_ndim=2)
        if v.shape[:-1] != k.shape[:-1] or v.dtype != k.dtype or v.device != k.device:
            raise ValueError(
                f"v must be (..., n_new, d_v) with k's leading dims, dtype and device, got k "
                f"{tuple(k.shape)} {k.dtype} and v {tuple(v.shape)} {v.dtype}"
            )
        if self._keys is None or self._values is None:
            lead = k.shape[:-2]
            self._keys = k.new_empty(*lead, self.max_len, k.shape[-1])
            self._values = v.new_empty(*lead, self.max_len, v.shape[-1])
        want = (*self._keys.shape[:-2], k.shape[-2], self._keys.shape[-1])
        if k.shape != want or v.shape[-1] != self._values.shape[-1]:
            raise ValueError(
                f"k must be (..., n_new, d) = {want} like the cached keys, got {tuple(k.shape)}"
                f" (v {tuple(v.shape)}, cached values {tuple(self._values.shape)})"
            )
        return k, v

    def reset(self) -> None:
        """Forget every cached position, keeping the storage for the next sequence."""
        self.length = 0

    @property
    def nbytes(self) -> int:
        """Bytes of the allocated storage, ``2 * max_len * d * element size`` per sequence."""
        if self._keys is None or self._values is None:
            return 0
        return self._keys.nbytes + self._values.nbytes


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Repeat every key or value head ``n_rep`` times, once for each query head that shares it.

    In grouped-query attention, ``n_rep`` consecutive query heads share one key/value head:
    query head ``h`` reads key/value head ``h // n_rep``. Repeating the heads in place
    (``0, 0, 1, 1, ...``, not ``0, 1, 0, 1, ...``) gives every query head its own copy, so
    that ordinary multi-head attention can run on the result.

    Args:
        x: keys or values ``(..., H_kv, M, d)``: heads third from last.
        n_rep: query heads per key/value head, > 0.

    Returns:
        ``(..., H_kv * n_rep, M, d)``; ``x`` itself when ``n_rep == 1``.

    Introduced in :ref:`sec-inference`.
    """
    x = _validate.tensor("x", x, min_ndim=3, floating=False)
    n_rep = _validate.positive_int("n_rep", n_rep)
    if n_rep == 1:
        return x
    return x.repeat_interleave(n_rep, dim=-3)  # (..., H_kv * n_rep, M, d)


def kv_cache_bytes(
    num_layers: int,
    num_kv_heads: int,
    head_dim: int,
    length: int,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
) -> int:
    """Count the bytes of the keys and values a decoder caches for its sequences.

    Every layer stores a key and a value vector of ``head_dim`` numbers per key/value head
    and position: ``2 * num_layers * num_kv_heads * head_dim * length * batch_size`` numbers.

    Args:
        num_layers: decoder layers, > 0.
        num_kv_heads: key/value heads per layer, > 0 (the number of query heads for
            multi-head attention, 1 for multi-query attention).
        head_dim: size of each key and value vector, > 0.
        length: cached positions per sequence, > 0.
        batch_size: sequences, > 0.
        dtype: the dtype of the cached tensors.

    Returns:
        The size in bytes, as an int.

    Introduced in :ref:`sec-inference`.
    """
    counts = (num_layers, num_kv_heads, head_dim, length, batch_size)
    names = ("num_layers", "num_kv_heads", "head_dim", "length", "batch_size")
    numbers = 2
    for name, count in zip(names, counts, strict=True):
        numbers *= _validate.positive_int(name, count)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__}")
    return numbers * dtype.itemsize
