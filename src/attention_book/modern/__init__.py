"""Attention in today's language models: latent, paged, sink and windowed caches.

Chapter 7 of the book. Each idea has its own module: ``mla`` (multi-head latent attention and
its cache), ``paged`` (a paged KV cache and a serving simulator), ``sinks`` (attention sinks
and streaming past the training length) and ``hybrid`` (local and global layers, a rolling
cache). Every attention module here plugs into
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
from .sinks import SinkAttention, SinkCache, copy_stream, softmax_with_sink

__all__ = [
    "LatentKVCache",
    "MultiHeadLatentAttention",
    "OutOfBlocksError",
    "PagedKVCache",
    "PagedSequenceCache",
    "Request",
    "RollingKVCache",
    "ServingStats",
    "SinkAttention",
    "SinkCache",
    "WindowedAttention",
    "copy_stream",
    "hybrid_cache_bytes",
    "latent_cache_bytes",
    "layer_windows",
    "receptive_field",
    "request_stream",
    "simulate_serving",
    "softmax_with_sink",
]

adopt(globals(), __all__)  # document and pickle them under this package
