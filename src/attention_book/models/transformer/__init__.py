"""The Transformer, read top to bottom: blocks, encoder, decoder, embeddings, and two models.

Every attention here is :class:`attention_book.attention.MultiHeadAttention`; there is no
second implementation. Masks follow the package's convention: True where a query may attend.
Position schemes come from :mod:`attention_book.positions`: absolute codes are added by
:class:`TokenEmbedding`, relative ones (``"rope"``, ``"alibi"``) act inside every
self-attention of the layers built with ``positions=...``.

Each piece has its own module, in reading order: ``blocks`` (feed-forward layer, encoder and
decoder layers), ``stacks`` (:class:`Encoder`, :class:`Decoder`), ``embedding``
(:class:`TokenEmbedding`), ``encoder_decoder`` (:class:`Seq2SeqTransformer`) and
``language_model`` (:class:`TransformerLM`); ``_common`` holds the shared type aliases and
checks. Import everything from here: ``from attention_book.models import transformer``.
"""

from __future__ import annotations

from ..._facade import adopt
from ...positions import sinusoidal_positions
from .blocks import DecoderLayer, EncoderLayer, FeedForward
from .embedding import TokenEmbedding
from .encoder_decoder import Seq2SeqTransformer
from .language_model import TransformerLM
from .stacks import Decoder, Encoder

__all__ = [
    "Decoder",
    "DecoderLayer",
    "Encoder",
    "EncoderLayer",
    "FeedForward",
    "Seq2SeqTransformer",
    "TokenEmbedding",
    "TransformerLM",
    "sinusoidal_positions",
]

adopt(globals(), __all__)  # document and pickle them under this package
