"""Generation one token at a time: the key-value cache."""

from __future__ import annotations

import torch

from .. import _validate

__all__ = ["KVCache"]


class KVCache:
    """Keys and values of the positions a decoder has already processed, grown in place.

    Storage for ``max_len`` positions is allocated at the first :meth:`update`; each update
    writes the new positions after the old ones and returns views of everything so far, so
    a decoding step computes keys and values for its new token only.

    Introduced in :ref:`sec-quadratic-wall`; built step by step in the page on inference.
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

    def reset(self) -> None:
        """Forget every cached position, keeping the storage for the next sequence."""
        self.length = 0

    @property
    def nbytes(self) -> int:
        """Bytes of the allocated storage, ``2 * max_len * d * element size`` per sequence."""
        if self._keys is None or self._values is None:
            return 0
        return self._keys.nbytes + self._values.nbytes
