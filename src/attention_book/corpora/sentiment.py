"""The sentiment corpus: reviews with negation, intensifiers and contrast, and their labels."""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..data import SPECIALS, Vocab
from ._common import Seed, _check_sentence, _count, _rng

__all__ = ["sentiment_evidence", "sentiment_label", "sentiment_sentences", "sentiment_vocab"]


_POSITIVE = ("good", "great", "fun", "brilliant", "lovely", "superb")
_NEGATIVE = ("bad", "awful", "boring", "dull", "terrible", "weak")
_NEGATORS = ("not", "never")
_INTENSIFIERS = ("very", "really", "so", "truly")
_SUBJECTS = ("movie", "film", "plot", "acting", "music", "ending", "story", "cast")
_NEUTRAL = ("long", "new", "french", "old", "second", "quiet")
_OPENERS = (("honestly",), ("i", "think"), ("overall",), ("to", "me"))
_CLOSERS = (("overall",), ("to", "me"), ("in", "the", "end"), ("i", "think"))
_COPULAS = ("was", "is", "seemed")


def sentiment_vocab() -> Vocab:
    """Build the word vocabulary of the sentiment task.

    Returns:
        A :class:`~attention_book.data.Vocab` of every word the sentences use.

    Introduced in :ref:`sec-applications`.
    """
    words = [*_POSITIVE, *_NEGATIVE, *_NEGATORS, *_INTENSIFIERS, *_SUBJECTS, *_NEUTRAL]
    words += [*_COPULAS, "the", "but"]
    for phrase in (*_OPENERS, *_CLOSERS):
        words += [w for w in phrase if w not in words]
    return Vocab(words)


def sentiment_evidence(sentence: Sequence[str]) -> tuple[int, int | None]:
    """Find the words that decide a sentence's sentiment.

    The last clause decides (after ``but``, the contrast wins): its polar word (``good``,
    ``awful``, ...) and, when one precedes it in that clause, its negator (``not``,
    ``never``). Intensifiers (``very``) do not change the label.

    Args:
        sentence: words of the sentiment task, at most :data:`MAX_SENTENCE_LEN`.

    Returns:
        ``(position of the polar word, position of its negator or None)``.

    Introduced in :ref:`sec-applications`.
    """
    _check_sentence(sentence, set(sentiment_vocab().tokens[len(SPECIALS) :]))
    words = list(sentence)
    start = max((i + 1 for i, w in enumerate(words) if w == "but"), default=0)
    polar = [i for i in range(start, len(words)) if words[i] in _POSITIVE + _NEGATIVE]
    if len(polar) != 1:
        raise ValueError(
            f"the deciding clause must hold exactly one polar word, got {len(polar)} in "
            f"{' '.join(words[start:])!r}"
        )
    negators = [i for i in range(start, polar[0]) if words[i] in _NEGATORS]
    return polar[0], (negators[-1] if negators else None)


def sentiment_label(sentence: Sequence[str]) -> int:
    """Label a sentence: 1 if positive, 0 if negative.

    Args:
        sentence: words of the sentiment task, at most :data:`MAX_SENTENCE_LEN`.

    Returns:
        The polarity of the deciding clause's polar word, flipped by a negator.

    Introduced in :ref:`sec-applications`.
    """
    polar, negator = sentiment_evidence(sentence)
    return int((sentence[polar] in _POSITIVE) != (negator is not None))


def _clause(rng: random.Random, opener: bool) -> list[str]:
    words = [*rng.choice(_OPENERS)] if opener and rng.random() < 0.3 else []
    words += ["the"] + ([rng.choice(_NEUTRAL)] if rng.random() < 0.4 else [])
    words += [rng.choice(_SUBJECTS), rng.choice(_COPULAS)]
    if rng.random() < 0.5:
        words.append(rng.choice(_NEGATORS))
    if rng.random() < 0.4:
        words.append(rng.choice(_INTENSIFIERS))
    return [*words, rng.choice(_POSITIVE if rng.random() < 0.5 else _NEGATIVE)]


def sentiment_sentences(
    n: int, seed: Seed = 0, contrast: float = 0.3
) -> list[tuple[list[str], int]]:
    """Draw ``n`` random review sentences with their sentiment labels.

    A sentence is a clause like ``"the long film was not very good"``, sometimes with an
    opener (``"honestly"``) or a closer (``"in the end"``); with probability ``contrast`` a
    second clause follows after ``"but"`` and decides the label.

    Args:
        n: number of sentences, > 0.
        seed: an int or a ``torch.Generator``; the same seed gives the same sentences.
        contrast: probability of a ``"... but ..."`` sentence, in ``[0, 1]``.

    Returns:
        ``n`` pairs ``(words, label)``, label 1 for positive and 0 for negative.

    Introduced in :ref:`sec-applications`.
    """
    n = _count("n", n)
    if isinstance(contrast, bool) or not isinstance(contrast, (int, float)):
        raise TypeError(f"contrast must be a number, got {type(contrast).__name__}")
    if not 0 <= contrast <= 1:
        raise ValueError(f"contrast must be a probability in [0, 1], got {contrast}")
    rng = _rng(seed)
    out = []
    for _ in range(n):
        words = _clause(rng, opener=True)
        if rng.random() < contrast:
            words += ["but", *_clause(rng, opener=False)]
        elif rng.random() < 0.3:
            words += list(rng.choice(_CLOSERS))
        out.append((words, sentiment_label(words)))
    return out
