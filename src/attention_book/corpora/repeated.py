"""Repeated random sequences: the toy task on which induction heads form."""

from __future__ import annotations

import torch

from ..data import BOS_ID, PAD_ID, SPECIALS
from ._common import Seed, _count, _rng

__all__ = ["repeated_sequences"]


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
