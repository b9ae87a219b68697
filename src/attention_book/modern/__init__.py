"""Attention in today's language models: latent, paged, sink and windowed caches.

Chapter 7 of the book. Each idea has its own module: ``mla`` (multi-head latent attention),
``paged`` (a paged KV cache), ``sinks`` (attention sinks and streaming) and ``hybrid`` (local
and global layers). Import everything from here: ``from attention_book import modern``.
"""

from __future__ import annotations

from .._facade import adopt
from . import hybrid, mla, paged, sinks

# Filled in while the chapter is written; listed by name once it is done.
__all__: list[str] = []
for _module in (mla, paged, sinks, hybrid):
    for _name in _module.__all__:
        globals()[_name] = getattr(_module, _name)
        __all__.append(_name)

adopt(globals(), __all__)  # document and pickle them under this package
