"""Sentences of words into padded batches of token ids."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data import BOS_ID, EOS_ID, PAD_ID, Vocab
from ._common import _count

__all__ = ["encode_sentences"]


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
