"""Seeded synthetic data for the sequence-to-sequence chapters, and the batches they train on.

Token ids are shared by every seq2seq model in the book: ``PAD_ID = 0`` pads a batch,
``BOS_ID = 1`` starts every decoder input, ``EOS_ID = 2`` ends every target, and real tokens
start at 3. Two tasks:

- **dates**: a human-readable date (``"wednesday 3 march 2021"``, ``"03/03/2021"``,
  ``"Mar 3, 21"`` ...) to its ISO form ``"2021-03-03"``, character by character; every output
  character comes from a known part of the input, so a learned alignment can be checked.
- **sequences**: random strings of letters, to be reversed (or copied), with lengths from
  short to long, letters repeating or all distinct; the task of the bottleneck experiment.

A task returns ``(source, target)`` pairs of token lists; :func:`encode_pairs` turns them
into the padded tensors ``(src, tgt_in, tgt_out)`` that :func:`attention_book.train.train`
consumes.
"""

from __future__ import annotations

import datetime
import random
import string
from collections.abc import Callable, Iterable, Sequence

import torch

from . import _validate

__all__ = [
    "BOS_ID",
    "DATE_FORMATS",
    "EOS_ID",
    "PAD_ID",
    "SPECIALS",
    "Vocab",
    "date_pairs",
    "date_vocabs",
    "encode_pairs",
    "length_batches",
    "sequence_pairs",
    "sequence_vocab",
]

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
#: The special tokens, at ids 0, 1 and 2 of every vocabulary.
SPECIALS = ("<pad>", "<bos>", "<eos>")

Seed = int | torch.Generator


class Vocab:
    """Map tokens to ids and back; ids 0, 1, 2 are PAD, BOS and EOS.

    Introduced in :ref:`sec-bahdanau-luong`.
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        """Give each distinct token an id, from 3 up, in the order given.

        Args:
            tokens: the real tokens (strings), without the special ones; no duplicates.
        """
        tokens = list(tokens)
        if not tokens:
            raise ValueError("tokens must hold at least one token, got none")
        for token in tokens:
            if not isinstance(token, str) or not token:
                raise TypeError(f"every token must be a non-empty str, got {token!r}")
        if len(set(tokens)) != len(tokens) or set(tokens) & set(SPECIALS):
            raise ValueError(f"tokens must be distinct and not special {SPECIALS}, got {tokens}")
        self.tokens: list[str] = [*SPECIALS, *tokens]
        self._ids = {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        """Return the number of ids, special ones included."""
        return len(self.tokens)

    def __repr__(self) -> str:
        """Show the size and the first tokens."""
        shown = "".join(t if len(t) == 1 else f" {t} " for t in self.tokens[3:23])
        return f"Vocab({len(self)} ids: specials + {shown!r}{'...' if len(self) > 23 else ''})"

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Turn a non-empty sequence of tokens (or the characters of a string) into ids.

        Args:
            tokens: the tokens; a string is read as its characters.

        Returns:
            One id per token, without BOS or EOS.
        """
        if len(tokens) == 0:
            raise ValueError("tokens must not be empty: a sequence needs at least one token")
        ids = []
        for position, token in enumerate(tokens):
            if token not in self._ids or self._ids[token] < len(SPECIALS):
                raise ValueError(
                    f"unknown token {token!r} at position {position}: the vocabulary holds "
                    f"{len(self) - len(SPECIALS)} tokens, {''.join(self.tokens[3:])!r}"[:200]
                )
            ids.append(self._ids[token])
        return ids

    def decode(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Turn ids back into tokens, stopping at the first EOS and skipping PAD and BOS.

        Args:
            ids: token ids, a list or a 1-D tensor.

        Returns:
            The tokens before the first EOS.
        """
        if isinstance(ids, torch.Tensor):
            if ids.ndim != 1:
                raise ValueError(f"ids must be a 1-D tensor, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        tokens = []
        for i in ids:
            if not 0 <= i < len(self):
                raise ValueError(f"id {i} is outside the vocabulary of {len(self)} ids")
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                tokens.append(self.tokens[i])
        return tokens


# --- dates -------------------------------------------------------------------------------

_MONTHS = [datetime.date(2000, m, 1).strftime("%B") for m in range(1, 13)]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


#: How a date can be written; each takes a ``datetime.date`` and returns a string.
DATE_FORMATS: dict[str, Callable[[datetime.date], str]] = {
    "3 March 2021": lambda d: f"{d.day} {_MONTHS[d.month - 1]} {d.year}",
    "3 march 2021": lambda d: f"{d.day} {_MONTHS[d.month - 1].lower()} {d.year}",
    "March 3, 2021": lambda d: f"{_MONTHS[d.month - 1]} {d.day}, {d.year}",
    "Mar 3, 21": lambda d: f"{_MONTHS[d.month - 1][:3]} {d.day}, {d.year % 100:02d}",
    "3 Mar 2021": lambda d: f"{d.day} {_MONTHS[d.month - 1][:3]} {d.year}",
    "03/03/2021": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}",
    "3.3.21": lambda d: f"{d.day}.{d.month}.{d.year % 100:02d}",
    "March 3rd, 2021": lambda d: f"{_MONTHS[d.month - 1]} {_ordinal(d.day)}, {d.year}",
    "wednesday 3 march 2021": lambda d: (
        f"{_DAYS[d.weekday()].lower()} {d.day} {_MONTHS[d.month - 1].lower()} {d.year}"
    ),
    "Wed, 3 Mar 2021": lambda d: (
        f"{_DAYS[d.weekday()][:3]}, {d.day} {_MONTHS[d.month - 1][:3]} {d.year}"
    ),
}

_FIRST_DATE = datetime.date(1950, 1, 1)  # two-digit years: 50-99 are 19xx, 00-49 are 20xx
_LAST_DATE = datetime.date(2049, 12, 31)


def _rng(seed: Seed) -> random.Random:
    return random.Random(_validate.seed(seed))


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def date_pairs(n: int, seed: Seed = 0) -> list[tuple[str, str]]:
    """Draw ``n`` random dates from 1950 to 2049, each written in a random human format.

    Args:
        n: number of pairs, > 0.
        seed: an int or a ``torch.Generator``; the same seed gives the same pairs.

    Returns:
        ``n`` pairs ``(human, iso)``, e.g. ``("Mar 3, 21", "2021-03-03")``. Two-digit years
        50-99 mean 19xx and 00-49 mean 20xx; ``dd/mm/yyyy`` is day first.

    Introduced in :ref:`sec-bahdanau-luong`.
    """
    n = _count("n", n)
    rng = _rng(seed)
    formats = list(DATE_FORMATS.values())
    first, last = _FIRST_DATE.toordinal(), _LAST_DATE.toordinal()
    pairs = []
    for _ in range(n):
        date = datetime.date.fromordinal(rng.randint(first, last))
        pairs.append((rng.choice(formats)(date), date.isoformat()))
    return pairs


def date_vocabs() -> tuple[Vocab, Vocab]:
    """Build the character vocabularies of the dates task.

    Returns:
        ``(source, target)``: the source holds letters, digits, space and ``,./``; the
        target the digits and ``-``.

    Introduced in :ref:`sec-bahdanau-luong`.
    """
    source = Vocab(string.ascii_lowercase + string.ascii_uppercase + string.digits + " ,./")
    return source, Vocab(string.digits + "-")


# --- sequences ---------------------------------------------------------------------------


def sequence_vocab(num_symbols: int) -> Vocab:
    """Build the vocabulary of the sequence task: the first ``num_symbols`` of ``a-z``, ``A-Z``.

    Args:
        num_symbols: number of distinct symbols, 1 to 52.

    Returns:
        A :class:`Vocab` of ``num_symbols + 3`` ids.

    Introduced in :ref:`sec-seq2seq`.
    """
    num_symbols = _count("num_symbols", num_symbols)
    if num_symbols > 52:
        raise ValueError(f"num_symbols must be at most 52 (a-z and A-Z), got {num_symbols}")
    return Vocab(string.ascii_letters[:num_symbols])


def sequence_pairs(
    n: int,
    min_len: int,
    max_len: int,
    num_symbols: int = 10,
    task: str = "reverse",
    seed: Seed = 0,
    distinct: bool = False,
) -> list[tuple[str, str]]:
    """Draw ``n`` random strings with lengths uniform in ``[min_len, max_len]``, and targets.

    Args:
        n: number of pairs, > 0.
        min_len: shortest length, > 0.
        max_len: longest length, >= ``min_len``.
        num_symbols: the strings use the first ``num_symbols`` letters, 1 to 52.
        task: ``"reverse"`` (the target is the string backwards) or ``"copy"``.
        seed: an int or a ``torch.Generator``; the same seed gives the same pairs.
        distinct: no letter occurs twice in a string (then ``max_len <= num_symbols``); by
            default letters are drawn independently and repeat.

    Returns:
        ``n`` pairs ``(source, target)`` of strings, e.g. ``("abcd", "dcba")``.

    Introduced in :ref:`sec-seq2seq`.
    """
    n, min_len, max_len = _count("n", n), _count("min_len", min_len), _count("max_len", max_len)
    if min_len > max_len:
        raise ValueError(f"min_len must be <= max_len, got min_len={min_len}, max_len={max_len}")
    if task not in ("reverse", "copy"):
        raise ValueError(f"task must be 'reverse' or 'copy', got {task!r}")
    letters = sequence_vocab(num_symbols).tokens[len(SPECIALS) :]
    if distinct and max_len > len(letters):
        raise ValueError(
            f"max_len must be <= num_symbols for strings of distinct letters, got "
            f"max_len={max_len}, num_symbols={num_symbols}"
        )
    rng = _rng(seed)
    pairs = []
    for _ in range(n):
        length = rng.randint(min_len, max_len)
        drawn = rng.sample(letters, k=length) if distinct else rng.choices(letters, k=length)
        source = "".join(drawn)
        pairs.append((source, source[::-1] if task == "reverse" else source))
    return pairs


# --- batches -----------------------------------------------------------------------------


def encode_pairs(
    pairs: Sequence[tuple[Sequence[str], Sequence[str]]],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    max_len: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encode and pad ``(source, target)`` pairs into the tensors a seq2seq model trains on.

    Args:
        pairs: ``(source, target)`` token sequences (strings are read as characters).
        src_vocab: vocabulary of the sources.
        tgt_vocab: vocabulary of the targets.
        max_len: the longest source and target (without EOS) allowed; ``None`` for no limit.

    Returns:
        ``(src, tgt_in, tgt_out)``, long tensors padded with ``PAD_ID`` at the end: ``src``
        ``(B, S)`` = source + EOS, so that the encoder sees where the source ends;
        ``tgt_in`` ``(B, T)`` = BOS + target; ``tgt_out`` ``(B, T)`` = target + EOS, what
        the model must predict at each step.

    Introduced in :ref:`sec-seq2seq`.
    """
    if len(pairs) == 0:
        raise ValueError("pairs must hold at least one (source, target) pair, got none")
    if max_len is not None:
        max_len = _count("max_len", max_len)
    sources, targets = [], []
    for i, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ValueError(f"pairs[{i}] must be a (source, target) pair, got {pair!r}")
        for name, seq in (("source", pair[0]), ("target", pair[1])):
            if max_len is not None and len(seq) > max_len:
                raise ValueError(
                    f"pairs[{i}] has a {name} of {len(seq)} tokens, more than max_len={max_len}"
                )
        sources.append(src_vocab.encode(pair[0]))
        targets.append(tgt_vocab.encode(pair[1]))
    b, s, t = len(pairs), max(map(len, sources)) + 1, max(map(len, targets)) + 1
    src = torch.full((b, s), PAD_ID, dtype=torch.long)
    tgt_in = torch.full((b, t), PAD_ID, dtype=torch.long)
    tgt_out = torch.full((b, t), PAD_ID, dtype=torch.long)
    for i, (source, target) in enumerate(zip(sources, targets, strict=True)):
        src[i, : len(source) + 1] = torch.tensor([*source, EOS_ID])
        tgt_in[i, : len(target) + 1] = torch.tensor([BOS_ID, *target])
        tgt_out[i, : len(target) + 1] = torch.tensor([*target, EOS_ID])
    return src, tgt_in, tgt_out


def length_batches(
    src: torch.Tensor,
    tgt_in: torch.Tensor,
    tgt_out: torch.Tensor,
    batch_size: int,
    seed: Seed = 0,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Group examples of similar length into batches and cut the padding they do not need.

    A random batch of sequences from 5 to 34 tokens is almost always padded to 34; sorted by
    length, most batches are much shorter, and a recurrent model runs fewer steps. Pass the
    result to :func:`attention_book.train.train` with ``batch_size=None``.

    Args:
        src: ``(B, S)`` padded sources, from :func:`encode_pairs`.
        tgt_in: ``(B, T)`` decoder inputs.
        tgt_out: ``(B, T)`` decoder targets.
        batch_size: examples per batch, > 0.
        seed: an int or a ``torch.Generator``; breaks ties between equal lengths at random.

    Returns:
        A list of ``(src, tgt_in, tgt_out)`` batches, each as wide as its longest example.

    Introduced in :ref:`sec-bottleneck`.
    """
    batch_size = _count("batch_size", batch_size)
    for name, t in (("src", src), ("tgt_in", tgt_in), ("tgt_out", tgt_out)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or len(t) != len(src):
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(
                f"{name} must be a (B, length) tensor with B = {len(src)}, got {shape}"
            )
    rng = torch.Generator().manual_seed(_rng(seed).randrange(2**62))
    shuffled = torch.randperm(len(src), generator=rng)
    lengths = (src != PAD_ID).sum(dim=1)
    order = shuffled[torch.argsort(lengths[shuffled], stable=True)]
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width_src = int((src[rows] != PAD_ID).sum(dim=1).max())
        width_tgt = int((tgt_out[rows] != PAD_ID).sum(dim=1).max())
        batches.append((src[rows, :width_src], tgt_in[rows, :width_tgt], tgt_out[rows, :width_tgt]))
    return batches
