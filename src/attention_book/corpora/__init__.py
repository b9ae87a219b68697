"""Seeded synthetic corpora for the Transformer chapter: every task's answer is known exactly.

Four tasks, each small enough to train on a laptop CPU in seconds:

- **translation**: English sentences ``"the big dogs saw a cat"`` into a made-up language with
  its own word order (subject-object-verb, adjectives after the noun in mirror order, a
  postposed article ``la``) and agreement suffixes (``-en`` marks a plural noun and each of
  its adjectives, ``-n`` a verb whose subject is plural). :func:`translate` is the rule.
- **summaries**: a short story of events ``"ann met bob . cy paid ann ."`` and its summary,
  every person in order of first mention, ``"ann bob cy"`` (optionally with how often each
  appears, ``"ann 2 bob 1 cy 1"``): the summary depends on the whole story.
- **sentiment**: review sentences with negation (``not``, ``never``), intensifiers (``very``)
  and contrast (``... but ...``), labelled 1 (positive) or 0 (negative) by
  :func:`sentiment_label`.
- **repeated random sequences**: random tokens followed by the same tokens again, the toy task
  on which induction heads form.

Token ids follow :mod:`attention_book.data`: ``PAD_ID = 0``, ``BOS_ID = 1``, ``EOS_ID = 2``,
real tokens from 3 up.

One module per corpus family: ``translation``, ``summaries``, ``sentiment`` and ``repeated``,
with ``encoding`` (sentences into batches of ids) and a private ``_common``. Import everything
from here: ``from attention_book import corpora``.
"""

from __future__ import annotations

from .._facade import adopt
from . import _common
from .encoding import encode_sentences
from .repeated import repeated_sequences
from .sentiment import sentiment_evidence, sentiment_label, sentiment_sentences, sentiment_vocab
from .summaries import summarize, summary_pairs, summary_vocabs
from .translation import translate, translation_alignment, translation_pairs, translation_vocabs

#: The longest sentence (in tokens) that :func:`translate` and :func:`sentiment_label` accept.
MAX_SENTENCE_LEN = _common.MAX_SENTENCE_LEN

__all__ = [
    "MAX_SENTENCE_LEN",
    "encode_sentences",
    "repeated_sequences",
    "sentiment_evidence",
    "sentiment_label",
    "sentiment_sentences",
    "sentiment_vocab",
    "summarize",
    "summary_pairs",
    "summary_vocabs",
    "translate",
    "translation_alignment",
    "translation_pairs",
    "translation_vocabs",
]

adopt(globals(), __all__)  # document and pickle them under this package
