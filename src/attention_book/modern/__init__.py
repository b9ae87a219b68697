"""Attention in today's language models: caches that shrink, and states that replace them.

Chapter 7 of the book. Each idea has its own module: ``mla`` (multi-head latent attention and
its cache), ``paged`` (a paged KV cache and a serving simulator), ``sinks`` (attention sinks
and streaming past the training length), ``hybrid`` (local and global layers, a rolling
cache), ``linear`` (gated and delta-rule linear attention in recurrent, parallel and chunked
forms), ``recall`` (multi-query associative recall and one layer with a softmax, window or
fixed-state kind) and ``selection`` (learned block-sparse attention, as in Native Sparse
Attention). Every attention module here plugs into
:class:`attention_book.models.decoder.DecoderLM` through its ``attention=`` argument, and
every cache is a :class:`attention_book.efficient.KVCache`. Import everything from here:
``from attention_book import modern``.
"""

from __future__ import annotations

from .._facade import adopt
from .hybrid import (
    RollingKVCache,
    WindowedAttention,
    hybrid_cache_bytes,
    layer_windows,
    receptive_field,
)
from .linear import (
    decay_mask,
    delta_rule_attention,
    gated_linear_attention,
    linear_state_bytes,
)
from .mla import LatentKVCache, MultiHeadLatentAttention, latent_cache_bytes
from .paged import (
    OutOfBlocksError,
    PagedKVCache,
    PagedSequenceCache,
    Request,
    ServingStats,
    request_stream,
    simulate_serving,
)
from .recall import (
    KINDS,
    RECURRENT_KINDS,
    RecurrentAttention,
    associative_recall,
    layer_state_bytes,
)
from .selection import (
    NativeSparseAttention,
    block_scores,
    compress_blocks,
    select_blocks,
    topk_block_attention,
    topk_block_mask,
)
from .sinks import SinkAttention, SinkCache, copy_stream, softmax_with_sink

__all__ = [
    "KINDS",
    "RECURRENT_KINDS",
    "LatentKVCache",
    "MultiHeadLatentAttention",
    "NativeSparseAttention",
    "OutOfBlocksError",
    "PagedKVCache",
    "PagedSequenceCache",
    "RecurrentAttention",
    "Request",
    "RollingKVCache",
    "ServingStats",
    "SinkAttention",
    "SinkCache",
    "WindowedAttention",
    "associative_recall",
    "block_scores",
    "compress_blocks",
    "copy_stream",
    "decay_mask",
    "delta_rule_attention",
    "gated_linear_attention",
    "hybrid_cache_bytes",
    "latent_cache_bytes",
    "layer_state_bytes",
    "layer_windows",
    "linear_state_bytes",
    "receptive_field",
    "request_stream",
    "select_blocks",
    "simulate_serving",
    "softmax_with_sink",
    "topk_block_attention",
    "topk_block_mask",
]

adopt(globals(), __all__)  # document and pickle them under this package
