"""Attention without the N x N matrix: tiled, local, linear, cached and distributed.

Every function takes queries ``(..., N, d)``, keys ``(..., M, d)`` and values ``(..., M, d_v)``
as in :mod:`attention_book.attention`, and returns the output ``(..., N, d_v)`` (no weights:
not storing them is the point). With ``causal=True`` and ``N < M`` the queries are the last
``N`` of ``M`` positions, as in :func:`attention_book.attention.causal_mask`.

Each idea has its own module: ``flash`` (tiles and the online softmax), ``local`` (sparse
patterns), ``kernel`` (linear-time approximations), ``inference`` (generation) and ``ring``
(several processes). Import everything from here: ``from attention_book import efficient``.
"""

from __future__ import annotations

from .._facade import adopt
from .flash import flash_attention, merge_partial_attention
from .inference import KVCache, kv_cache_bytes, repeat_kv
from .kernel import (
    linear_attention,
    linformer_attention,
    performer_attention,
    random_features,
)
from .local import sliding_window_attention, sparse_attention_mask
from .ring import RingResult, ring_attention, run_ring_attention

__all__ = [
    "KVCache",
    "RingResult",
    "flash_attention",
    "kv_cache_bytes",
    "linear_attention",
    "linformer_attention",
    "merge_partial_attention",
    "performer_attention",
    "random_features",
    "repeat_kv",
    "ring_attention",
    "run_ring_attention",
    "sliding_window_attention",
    "sparse_attention_mask",
]

adopt(globals(), __all__)  # document and pickle them under this package
