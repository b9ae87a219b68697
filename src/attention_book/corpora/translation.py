"""The translation corpus: English into a made-up language, with its rule and alignment."""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..data import SPECIALS, Vocab
from ._common import Seed, _check_sentence, _count, _rng

__all__ = ["translate", "translation_alignment", "translation_pairs", "translation_vocabs"]


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
