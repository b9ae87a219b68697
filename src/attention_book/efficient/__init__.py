"""Attention without the N x N matrix: tiled, local, linear, cached and distributed.

Every function takes queries ``(..., N, d)``, keys ``(..., M, d)`` and values ``(..., M, d_v)``
as in :mod:`attention_book.attention`, and returns the output ``(..., N, d_v)`` (no weights:
not storing them is the point). With ``causal=True`` and ``N < M`` the queries are the last
``N`` of ``M`` positions, as in :func:`attention_book.attention.causal_mask`.

Each idea has its own module: ``flash`` (tiles and the online softmax), ``flash_backward``
(its backward pass), ``local`` (sparse patterns), ``kernel`` (linear-time approximations),
``inference`` (generation) and ``ring`` (several processes). Import everything from here:
``from attention_book import efficient``.

``memory`` runs attention on a two-level memory (fast and small, slow and large) and counts the
words it moves; ``io_formulas`` gives those counts in closed form.
"""

from __future__ import annotations

from .._facade import adopt
from .flash import flash_attention, flash_attention_with_lse, merge_partial_attention
from .flash_backward import flash_attention_backward
from .inference import KVCache, kv_cache_bytes, repeat_kv
from .io_formulas import (
    IOCount,
    flash_attention_io_formula,
    flash_block_sizes,
    standard_attention_io_formula,
)
from .kernel import (
    linear_attention,
    linformer_attention,
    performer_attention,
    random_features,
)
from .local import sliding_window_attention, sparse_attention_mask
from .memory import TwoLevelMemory, flash_attention_io, standard_attention_io
from .ring import RingResult, ring_attention, run_ring_attention
from .triton_flash import triton_available, triton_flash_attention  # imports no Triton

__all__ = [
    "IOCount",
    "KVCache",
    "RingResult",
    "TwoLevelMemory",
    "flash_attention",
    "flash_attention_backward",
    "flash_attention_io",
    "flash_attention_io_formula",
    "flash_attention_with_lse",
    "flash_block_sizes",
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
    "standard_attention_io",
    "standard_attention_io_formula",
    "triton_available",
    "triton_flash_attention",
]

adopt(globals(), __all__)  # document and pickle them under this package
