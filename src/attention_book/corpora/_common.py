"""What the corpora share: seeds, counts, and the check of a sentence."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from .. import _validate

Seed = int | torch.Generator
#: The longest sentence (in tokens) that :func:`translate` and :func:`sentiment_label` accept.
MAX_SENTENCE_LEN = 24


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
