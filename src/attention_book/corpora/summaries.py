"""The summaries corpus: short stories and the people they mention, in order."""

from __future__ import annotations

from collections.abc import Sequence

from ..data import SPECIALS, Vocab
from ._common import MAX_SENTENCE_LEN, Seed, _check_sentence, _count, _rng

__all__ = ["summarize", "summary_pairs", "summary_vocabs"]


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
