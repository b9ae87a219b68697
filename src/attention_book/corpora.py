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
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from . import _validate
from .data import BOS_ID, EOS_ID, PAD_ID, SPECIALS, Vocab

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

Seed = int | torch.Generator
#: The longest sentence (in tokens) that :func:`translate` and :func:`sentiment_label` accept.
MAX_SENTENCE_LEN = 24

# --- translation -------------------------------------------------------------------------

# English singular, English plural, the made-up word
_NOUNS = [
    ("dog", "dogs", "vok"),
    ("cat", "cats", "miru"),
    ("bird", "birds", "pilo"),
    ("fox", "foxes", "ruka"),
    ("horse", "horses", "hesta"),
    ("child", "children", "tiko"),
    ("farmer", "farmers", "bondo"),
    ("teacher", "teachers", "lerno"),
    ("king", "kings", "reko"),
    ("girl", "girls", "sana"),
    ("boy", "boys", "pano"),
    ("mouse", "mice", "muso"),
]
_ADJECTIVES = {
    "big": "gran",
    "small": "pik",
    "tall": "alt",
    "young": "nov",
    "red": "ros",
    "black": "nir",
    "happy": "fel",
    "quiet": "tas",
}
_VERBS = {
    "saw": "vidi",
    "chased": "kasi",
    "liked": "ami",
    "helped": "helpi",
    "found": "trovi",
    "heard": "audi",
    "followed": "sekvi",
    "called": "voki",
}
_DETERMINERS = ("the", "a", "some")  # "a" only singular, "some" only plural
_PLURAL, _VERB_PLURAL, _DEFINITE, _OBJECT = "-en", "-n", "la", "po"
_NOUN_FORMS = {sg: (False, t) for sg, _, t in _NOUNS} | {pl: (True, t) for _, pl, t in _NOUNS}


def _rng(seed: Seed) -> random.Random:
    return random.Random(_validate.seed(seed))


def _count(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_sentence(sentence: object, known: set[str], max_len: int = MAX_SENTENCE_LEN) -> None:
    """Raise a ValueError for an empty or too long sentence, or an unknown word."""
    if isinstance(sentence, str):
        raise TypeError(f"sentence must be a list of words, got the str {sentence!r}; split it")
    if not isinstance(sentence, Sequence):
        raise TypeError(f"sentence must be a sequence of words, got {type(sentence).__name__}")
    if len(sentence) == 0:
        raise ValueError("sentence must not be empty: it needs at least one word")
    if len(sentence) > max_len:
        raise ValueError(f"sentence has {len(sentence)} words, more than the maximum {max_len}")
    for position, word in enumerate(sentence):
        if word not in known:
            raise ValueError(f"unknown word {word!r} at position {position}")


def translation_vocabs() -> tuple[Vocab, Vocab]:
    """Build the word vocabularies of the translation task.

    Returns:
        ``(english, target)``: every English word, and every word and suffix of the made-up
        language, each after the three special tokens.

    Introduced in :ref:`sec-encoder-decoder`.
    """
    english = [*_DETERMINERS, *(w for sg, pl, _ in _NOUNS for w in (sg, pl))]
    english += [*_ADJECTIVES, *_VERBS]
    target = [t for *_, t in _NOUNS] + [*_ADJECTIVES.values(), *_VERBS.values()]
    target += [_PLURAL, _VERB_PLURAL, _DEFINITE, _OBJECT]
    return Vocab(english), Vocab(target)


def _parse_noun_phrase(words: Sequence[str], start: int) -> tuple[dict[str, object], int]:
    """Read ``determiner adjective* noun`` from ``start``; return it and the next position."""

    def fail(position: int, wanted: str) -> ValueError:
        got = repr(words[position]) if position < len(words) else "the end of the sentence"
        return ValueError(f"expected {wanted} at position {position}, got {got}")

    if start >= len(words) or words[start] not in _DETERMINERS:
        raise fail(start, "a determiner (the, a, some)")
    position, adjectives = start + 1, []
    while position < len(words) and words[position] in _ADJECTIVES:
        adjectives.append(words[position])
        position += 1
    if position >= len(words) or words[position] not in _NOUN_FORMS:
        raise fail(position, "an adjective or a noun")
    plural, noun = _NOUN_FORMS[words[position]]
    determiner = words[start]
    if (determiner == "a" and plural) or (determiner == "some" and not plural):
        raise ValueError(
            f"{determiner!r} at position {start} does not agree with {words[position]!r}: "
            "'a' takes a singular noun, 'some' a plural one"
        )
    phrase = {"noun": noun, "plural": plural, "adjectives": adjectives, "det": determiner}
    return phrase, position + 1


def _translate_noun_phrase(phrase: dict[str, object], start: int) -> list[tuple[str, int]]:
    """The words of a noun phrase that starts at English position ``start``, with sources."""
    adjectives: list[str] = phrase["adjectives"]  # type: ignore[assignment]
    noun_at = start + 1 + len(adjectives)
    suffix = phrase["plural"]
    out = [(str(phrase["noun"]), noun_at)] + [(_PLURAL, noun_at)] * bool(suffix)
    for k in reversed(range(len(adjectives))):
        out += [(_ADJECTIVES[adjectives[k]], start + 1 + k)]
        out += [(_PLURAL, start + 1 + k)] * bool(suffix)
    return out + [(_DEFINITE, start)] * (phrase["det"] == "the")


def _translate(sentence: Sequence[str]) -> list[tuple[str, int]]:
    """Translate, pairing every output word with the English position it comes from."""
    english, _ = translation_vocabs()
    _check_sentence(sentence, set(english.tokens[len(SPECIALS) :]))
    words = list(sentence)
    subject, verb_at = _parse_noun_phrase(words, 0)
    if verb_at >= len(words) or words[verb_at] not in _VERBS:
        got = repr(words[verb_at]) if verb_at < len(words) else "the end of the sentence"
        raise ValueError(f"expected a verb at position {verb_at}, got {got}")
    obj, end = _parse_noun_phrase(words, verb_at + 1)
    if end != len(words):
        raise ValueError(f"expected the end of the sentence at position {end}")
    out = _translate_noun_phrase(subject, 0) + _translate_noun_phrase(obj, verb_at + 1)
    out += [(_OBJECT, end - 1), (_VERBS[words[verb_at]], verb_at)]
    return out + [(_VERB_PLURAL, verb_at - 1)] * bool(subject["plural"])


def translate(sentence: Sequence[str]) -> list[str]:
    """Translate an English sentence of the task's grammar into the made-up language.

    The grammar is ``subject verb object``, each noun phrase ``determiner adjective* noun``.
    The translation puts the verb last (subject, object, verb), every adjective after its
    noun in mirror order, ``la`` after a phrase with ``the``, ``po`` after the object,
    ``-en`` after a plural noun and after each of its adjectives, and ``-n`` after the verb
    when the subject is plural: ``the big dogs saw a cat`` becomes
    ``vok -en gran -en la miru po vidi -n``.

    Args:
        sentence: English words, at most :data:`MAX_SENTENCE_LEN`.

    Returns:
        The words of the translation.

    Introduced in :ref:`sec-encoder-decoder`.
    """
    return [word for word, _ in _translate(sentence)]


def translation_alignment(sentence: Sequence[str]) -> list[int]:
    """Say which English word each word of the translation comes from.

    A noun, adjective or verb comes from its English word, ``la`` from ``the``, ``po`` from
    the object noun, an ``-en`` from the word it follows, and the verb's ``-n`` from the
    plural subject noun (English marks plural on the noun, not on a past-tense verb).

    Args:
        sentence: English words, at most :data:`MAX_SENTENCE_LEN`.

    Returns:
        One English position per word of :func:`translate` ``(sentence)``.

    Introduced in :ref:`sec-encoder-decoder`.
    """
    return [position for _, position in _translate(sentence)]


def _noun_phrase(rng: random.Random, max_adjectives: int) -> list[str]:
    plural = rng.random() < 0.4
    determiner = rng.choice(["the", "some"] if plural else ["the", "a"])
    adjectives = rng.sample(list(_ADJECTIVES), rng.randint(0, max_adjectives))
    singular, plural_form, _ = rng.choice(_NOUNS)
    return [determiner, *adjectives, plural_form if plural else singular]


def translation_pairs(
    n: int, seed: Seed = 0, max_adjectives: int = 2
) -> list[tuple[list[str], list[str]]]:
    """Draw ``n`` random English sentences of the grammar, with their translations.

    Each choice is independent: the verb is uniform over the 8 verbs; each noun phrase is
    plural with probability 0.4, takes one of its two agreeing determiners (``the``/``a``
    or ``the``/``some``) with equal probability, a number of adjectives uniform in
    ``0 .. max_adjectives``, those adjectives as a uniform random ordered sample of distinct
    ones, and a noun uniform over the 12 nouns.

    Args:
        n: number of pairs, > 0.
        seed: an int or a ``torch.Generator``; the same seed gives the same pairs.
        max_adjectives: each noun phrase gets 0 to ``max_adjectives`` distinct adjectives,
            0 to 8.

    Returns:
        ``n`` pairs ``(english words, translated words)``.

    Introduced in :ref:`sec-encoder-decoder`.
    """
    n = _count("n", n)
    max_adjectives = _count("max_adjectives", max_adjectives, minimum=0)
    if max_adjectives > len(_ADJECTIVES):
        raise ValueError(f"max_adjectives must be at most {len(_ADJECTIVES)}, got {max_adjectives}")
    rng = _rng(seed)
    pairs = []
    for _ in range(n):
        verb = rng.choice(list(_VERBS))
        english = [*_noun_phrase(rng, max_adjectives), verb, *_noun_phrase(rng, max_adjectives)]
        pairs.append((english, translate(english)))
    return pairs


# --- summaries ---------------------------------------------------------------------------

_NAMES = ("ann", "bob", "cy", "dan", "eve", "fay", "gus", "hal")
_ACTIONS = ("met", "called", "helped", "paid", "thanked", "visited")
_MAX_COUNT = 6  # a story has at most 6 events, each naming a person at most once


def summary_vocabs() -> tuple[Vocab, Vocab]:
    """Build the vocabularies of the summary task.

    Returns:
        ``(story, summary)``: the story holds names, actions and ``"."``; the summary names
        and the counts ``"1"`` to ``"6"``.

    Introduced in :ref:`sec-applications`.
    """
    counts = [str(i) for i in range(1, _MAX_COUNT + 1)]
    return Vocab([*_NAMES, *_ACTIONS, "."]), Vocab([*_NAMES, *counts])


def summarize(story: Sequence[str], counts: bool = False) -> list[str]:
    """Summarize a story: every person in order of first mention (the cast list).

    Args:
        story: words of events ``name action name .``, at most :data:`MAX_SENTENCE_LEN`.
        counts: follow each name by how often the story mentions it.

    Returns:
        ``[name, name, ...]``, e.g. ``["ann", "bob"]``, or with ``counts``
        ``[name, count, name, count, ...]``, e.g. ``["ann", "2", "bob", "1"]``.

    Introduced in :ref:`sec-applications`.
    """
    source, _ = summary_vocabs()
    _check_sentence(story, set(source.tokens[len(SPECIALS) :]))
    seen: dict[str, int] = {}
    for word in story:
        if word in _NAMES:
            seen[word] = seen.get(word, 0) + 1
    if not seen:
        raise ValueError("story must mention at least one person")
    if not counts:
        return list(seen)
    return [token for name, count in seen.items() for token in (name, str(count))]


def summary_pairs(
    n: int, seed: Seed = 0, min_events: int = 2, max_events: int = 5, counts: bool = False
) -> list[tuple[list[str], list[str]]]:
    """Draw ``n`` random stories of events between people, with their summaries.

    Args:
        n: number of pairs, > 0.
        seed: an int or a ``torch.Generator``; the same seed gives the same pairs.
        min_events: fewest events in a story, > 0.
        max_events: most events, from ``min_events`` to 6 (a story has at most
            :data:`MAX_SENTENCE_LEN` words, four per event).
        counts: summaries with counts, as :func:`summarize` makes them.

    Returns:
        ``n`` pairs ``(story words, summary words)``, e.g.
        ``(["ann", "met", "bob", ".", "bob", "paid", "cy", "."], ["ann", "bob", "cy"])``.

    Introduced in :ref:`sec-applications`.
    """
    n, min_events = _count("n", n), _count("min_events", min_events)
    max_events = _count("max_events", max_events)
    if not min_events <= max_events <= MAX_SENTENCE_LEN // 4:
        raise ValueError(
            f"need min_events <= max_events <= {MAX_SENTENCE_LEN // 4}, got "
            f"min_events={min_events}, max_events={max_events}"
        )
    rng = _rng(seed)
    pairs = []
    for _ in range(n):
        cast = rng.sample(_NAMES, rng.randint(2, 5))  # a few people, so names recur
        story: list[str] = []
        for _ in range(rng.randint(min_events, max_events)):
            a, b = rng.sample(cast, 2)
            story += [a, rng.choice(_ACTIONS), b, "."]
        pairs.append((story, summarize(story, counts)))
    return pairs


# --- sentiment ---------------------------------------------------------------------------

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


# --- encoding ----------------------------------------------------------------------------


def encode_sentences(
    sentences: Sequence[Sequence[str]],
    vocab: Vocab,
    max_len: int,
    bos: bool = False,
    eos: bool = False,
) -> torch.Tensor:
    """Encode sentences into one batch of token ids, padded with ``PAD_ID`` at the end.

    Args:
        sentences: non-empty sequences of words, all in ``vocab``.
        vocab: the vocabulary.
        max_len: the most tokens a row may hold, BOS and EOS included, > 0.
        bos: start every row with ``BOS_ID``.
        eos: end every sentence with ``EOS_ID``.

    Returns:
        ``(B, N)`` long ids, ``N`` the longest encoded sentence.

    Introduced in :ref:`sec-language-model`.
    """
    max_len = _count("max_len", max_len)
    if len(sentences) == 0:
        raise ValueError("sentences must hold at least one sentence, got none")
    rows = []
    for i, sentence in enumerate(sentences):
        if isinstance(sentence, str):
            raise TypeError(f"sentences[{i}] must be a list of words, got the str {sentence!r}")
        if len(sentence) == 0:
            raise ValueError(f"sentences[{i}] is empty: a sentence needs at least one word")
        ids = [BOS_ID] * bos + vocab.encode(sentence) + [EOS_ID] * eos
        if len(ids) > max_len:
            raise ValueError(
                f"sentences[{i}] needs {len(ids)} tokens (BOS/EOS included), more than "
                f"max_len={max_len}"
            )
        rows.append(ids)
    batch = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long)
    for i, ids in enumerate(rows):
        batch[i, : len(ids)] = torch.tensor(ids)
    return batch


# --- repeated random sequences -----------------------------------------------------------


def repeated_sequences(
    n: int, min_len: int, max_len: int, vocab_size: int, seed: Seed = 0
) -> torch.Tensor:
    """Draw random token sequences, each followed by an exact copy of itself.

    Row ``i`` is ``BOS, x_1 .. x_L, x_1 .. x_L`` with ``L`` uniform in ``[min_len, max_len]``
    and the tokens uniform over the real ids ``3 .. vocab_size - 1``, then ``PAD_ID``. The
    first copy cannot be predicted; the second can, by anyone who looks back.

    Args:
        n: number of rows, > 0.
        min_len: shortest half length ``L``, > 0.
        max_len: longest half length, >= ``min_len``.
        vocab_size: number of ids, specials included, > 3.
        seed: an int or a ``torch.Generator``; the same seed gives the same rows.

    Returns:
        ``(n, 1 + 2 * max_len)`` long ids.

    Introduced in :ref:`sec-language-model`.
    """
    n, min_len, max_len = _count("n", n), _count("min_len", min_len), _count("max_len", max_len)
    vocab_size = _count("vocab_size", vocab_size, minimum=len(SPECIALS) + 1)
    if min_len > max_len:
        raise ValueError(f"min_len must be <= max_len, got min_len={min_len}, max_len={max_len}")
    generator = seed if isinstance(seed, torch.Generator) else None
    if generator is None:
        generator = torch.Generator().manual_seed(_rng(seed).randrange(2**62))
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=generator)
    tokens = torch.randint(len(SPECIALS), vocab_size, (n, max_len), generator=generator)
    out = torch.full((n, 1 + 2 * max_len), PAD_ID, dtype=torch.long)
    out[:, 0] = BOS_ID
    for i, length in enumerate(lengths.tolist()):
        out[i, 1 : 1 + length] = tokens[i, :length]
        out[i, 1 + length : 1 + 2 * length] = tokens[i, :length]
    return out
