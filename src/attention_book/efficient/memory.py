"""Two levels of memory, and the words attention moves between them (a word is one number).

Standard attention (Algorithm 0 of Dao et al. 2022) writes the scores and the weights to slow
memory; FlashAttention, in FlashAttention-1's loop order or FlashAttention-2's, never does. Both
run here on real tensors ``(N, d)``, one head of one sequence, and count the words they move;
``io_formulas`` gives the same counts in closed form.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from .. import _validate
from ._common import _scale
from .io_formulas import IOCount, _flash_blocks, _standard_block

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["TwoLevelMemory", "flash_attention_io", "standard_attention_io"]


class TwoLevelMemory:
    """A fast memory of ``fast_words`` words in front of an unbounded slow memory of tensors.

    ``slow`` maps names to tensors (copies of those given), ``fast`` names to the blocks on
    chip, one per name. ``reads`` and ``writes`` count the words that cross between them;
    filling slow memory at the start is not counted, as in the paper. A block that would
    overfill fast memory raises ``ValueError``, and only what fast memory holds can be stored.
    With ``mem = TwoLevelMemory(1000, Q=q)``, ``qi = mem.load("Q", slice(0, 8))`` reads ``8d``
    words and holds them; ``mem.hold("S", qi @ qi.T)`` holds 64 more, computed on chip;
    ``mem.store("Q", qi, slice(0, 8))`` writes ``8d`` words; ``mem.free("Q", "S")`` makes room.

    Args:
        fast_words: the words fast memory holds, > 0.
        **slow: the tensors in slow memory at the start, by name.

    Introduced in :ref:`sec-flash-backward`.
    """

    def __init__(self, fast_words: int, **slow: torch.Tensor) -> None:
        self.fast_words = _validate.positive_int("fast_words", fast_words)
        self.slow = {name: _validate.tensor(name, x).clone() for name, x in slow.items()}
        self.fast: dict[str, torch.Tensor] = {}
        self.used = self.reads = self.writes = 0  # words held in fast memory, words moved

    @property
    def total(self) -> int:
        """Words moved either way."""
        return self.reads + self.writes

    def count(self) -> IOCount:
        """The words moved so far."""
        return IOCount(self.reads, self.writes)

    def load(self, name: str, rows: slice = slice(None), cols: slice = slice(None)) -> torch.Tensor:
        """Copy a block of slow tensor ``name`` into fast memory (replacing ``name``'s block)."""
        index = self._index(name, rows, cols)
        block = self.slow[name][index]
        self.reads += block.numel()
        return self.hold(name, block.clone())

    def hold(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """Keep ``value``, computed on chip, in fast memory as ``name``; return it."""
        self.free(name)
        if self.used + value.numel() > self.fast_words:
            held = ", ".join(f"{key} {x.numel()}" for key, x in self.fast.items()) or "nothing"
            raise ValueError(
                f"fast memory holds {self.fast_words} words, {self.used} are in use ({held}) "
                f"and {name} needs {value.numel()} more"
            )
        self.fast[name] = value
        self.used += value.numel()
        return value

    def store(
        self, name: str, value: torch.Tensor, rows: slice = slice(None), cols: slice = slice(None)
    ) -> None:
        """Write ``value``, which fast memory holds, into a block of slow tensor ``name``."""
        if all(value is not x for x in self.fast.values()):
            raise ValueError(f"store writes from fast memory: load or hold the value for {name}")
        index = self._index(name, rows, cols)
        self.slow[name][index] = value
        self.writes += value.numel()

    def free(self, *names: str) -> None:
        """Drop the blocks ``names`` from fast memory."""
        for name in names:
            if name in self.fast:
                self.used -= self.fast.pop(name).numel()

    def _index(self, name: str, rows: slice, cols: slice) -> tuple[slice, ...]:
        if name not in self.slow:
            raise ValueError(f"slow memory holds {sorted(self.slow)}, not {name!r}")
        if self.slow[name].ndim == 1 and cols != slice(None):
            raise ValueError(f"{name} is a vector: it has rows only, got cols={cols}")
        return (rows,) if self.slow[name].ndim == 1 else (rows, cols)


def _one_thread(fn: _F) -> _F:
    """Run ``fn`` on one CPU thread: its tiles are small, and threads only wait on each other."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper  # type: ignore[return-value]


@_one_thread
def standard_attention_io(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fast_words: int, scale: float | None = None
) -> tuple[torch.Tensor, IOCount]:
    """Run standard attention on a two-level memory and count the words it moves.

    Three passes, as in Algorithm 0 of Dao et al. (2022), each fitting in fast memory: the
    scores ``S = Q K^T`` in ``b x b`` tiles (``b`` the largest with ``2bd + b^2 <= M``),
    written to slow memory; ``P = softmax(S)``, rows read once if ``N + 2 <= M``, else twice
    (max and sum, then ``P``), written to slow memory; ``O = P V`` in tiles.

    Args:
        q: queries ``(N, d)``: one head of one sequence, no batch dims.
        k: keys ``(N, d)``.
        v: values ``(N, d)``.
        fast_words: words of fast memory ``M``, at least ``2d + 1``.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.

    Returns:
        The output ``(N, d)``, equal to softmax attention, and the :class:`IOCount`, equal to
        :func:`standard_attention_io_formula`.

    Introduced in :ref:`sec-flash-backward`.
    """
    q, k, v = _check_qkv(q, k, v)
    (n, d), scale = q.shape, _scale(scale, q.shape[1])
    b, rows = _standard_block(n, d, fast_words), min(n, fast_words // (n + 2))
    scores, weights, out = q.new_empty(n, n), q.new_empty(n, n), torch.empty_like(q)
    mem = TwoLevelMemory(fast_words, Q=q, K=k, V=v, S=scores, P=weights, O=out)
    for i in _blocks(n, b):  # 1. S = Q K^T, to slow memory
        qi = mem.load("Q", i)
        for j in _blocks(n, b):
            mem.store("S", mem.hold("S", qi @ mem.load("K", j).T * scale), i, j)  # (b, b)
        mem.free("Q", "K", "S")
    for i in _blocks(n, max(rows, 1)):  # 2. P = softmax(S), to slow memory
        if rows:  # whole rows fit: read S once
            s = mem.load("S", i)  # (rows, N)
            s.sub_(mem.hold("m", s.amax(-1))[:, None]).exp_()
            mem.store("P", s.div_(mem.hold("l", s.sum(-1))[:, None]), i)
        else:  # a row does not fit: one pass for its max and sum, one for P
            m, l_ = mem.hold("m", q.new_full((1,), -math.inf)), mem.hold("l", q.new_zeros(1))
            for j in _blocks(n, fast_words - 2):
                s = mem.load("S", i, j)  # (1, M - 2)
                new = torch.maximum(m, s.amax())
                l_.mul_((m - new).exp()).add_((s - new).exp().sum())
                m.copy_(new)
            for j in _blocks(n, fast_words - 2):
                mem.store("P", mem.load("S", i, j).sub_(m).exp_().div_(l_), i, j)
        mem.free("S", "m", "l")
    for i in _blocks(n, b):  # 3. O = P V, to slow memory
        o = mem.hold("O", q.new_zeros(i.stop - i.start, d))  # (b, d)
        for j in _blocks(n, b):
            o.addmm_(mem.load("P", i, j), mem.load("V", j))
        mem.store("O", o, i)
        mem.free("O", "P", "V")
    return mem.slow["O"], mem.count()


@_one_thread
def flash_attention_io(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    fast_words: int,
    order: str = "fa2",
    scale: float | None = None,
    block_size: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, IOCount]:
    """Run FlashAttention on a two-level memory and count the words it moves.

    Tiles of ``block_q`` queries and ``block_k`` keys meet in fast memory, where an online
    softmax keeps each query's running max ``m`` and sum ``l``; a tile holds
    ``2d(block_q + block_k) + 2 block_q + block_q block_k`` words. ``"fa1"`` is Algorithm 1
    of Dao et al. (2022): key/value blocks outer, and per tile ``Q_i, O_i, l_i, m_i`` read and
    ``O_i, l_i, m_i`` written. ``"fa2"`` is FlashAttention-2's: query blocks outer, ``O_i``
    kept on chip and written once, with ``L = m + log l`` for the backward pass.

    Args:
        q: queries ``(N, d)``: one head of one sequence, no batch dims.
        k: keys ``(N, d)``.
        v: values ``(N, d)``.
        fast_words: words of fast memory ``M``, at least ``4d + 3``.
        order: the loop order, ``"fa1"`` or ``"fa2"``.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.
        block_size: ``(block_q, block_k)``; ``None`` means :func:`flash_block_sizes`.

    Returns:
        The output ``(N, d)``, equal to softmax attention, and the :class:`IOCount`, equal to
        :func:`flash_attention_io_formula`.

    Introduced in :ref:`sec-flash-backward`.
    """
    q, k, v = _check_qkv(q, k, v)
    (n, d), scale = q.shape, _scale(scale, q.shape[1])
    bq, bk = _flash_blocks(n, d, fast_words, order, block_size)
    mem = TwoLevelMemory(fast_words, Q=q * scale, K=k, V=v, O=torch.zeros_like(q))  # Q scaled
    if order == "fa1":
        mem.slow.update(l=q.new_zeros(n), m=q.new_full((n,), -math.inf))
        for j in _blocks(n, bk):
            kj, vj = mem.load("K", j), mem.load("V", j)  # (bk, d) each
            for i in _blocks(n, bq):
                qi, o, l_, m = (mem.load(name, i) for name in ("Q", "O", "l", "m"))
                s = mem.hold("S", qi @ kj.T)  # (bq, bk)
                _online_step(s, vj, o.mul_(l_[:, None]), l_, m)  # O_i was stored normalised
                mem.store("O", o.div_(l_[:, None]), i)
                mem.store("l", l_, i)
                mem.store("m", m, i)
        return mem.slow["O"], mem.count()
    mem.slow["L"] = q.new_empty(n)
    for i in _blocks(n, bq):
        qi = mem.load("Q", i)  # (bq, d)
        o = mem.hold("O", q.new_zeros(i.stop - i.start, d))
        l_, m = mem.hold("l", q.new_zeros(len(o))), mem.hold("m", q.new_full((len(o),), -math.inf))
        for j in _blocks(n, bk):
            kj, vj = mem.load("K", j), mem.load("V", j)
            _online_step(mem.hold("S", qi @ kj.T), vj, o, l_, m)  # S: (bq, bk)
        mem.store("O", o.div_(l_[:, None]), i)
        mem.store("L", m.add_(l_.log()), i)
        mem.free("K", "V", "S")
    return mem.slow["O"], mem.count()


def _online_step(
    s: torch.Tensor, v: torch.Tensor, o: torch.Tensor, l_: torch.Tensor, m: torch.Tensor
) -> None:
    """Fold a tile of scores ``s`` into the unnormalised output ``o``, sum ``l_`` and max ``m``."""
    new = torch.maximum(m, s.amax(-1))
    rescale = (m - new).exp()  # what the old sum and output are worth under the new max
    l_.mul_(rescale).add_(s.sub_(new[:, None]).exp_().sum(-1))  # s becomes exp(S - m_new)
    o.mul_(rescale[:, None]).addmm_(s, v)
    m.copy_(new)


def _blocks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _check_qkv(q: object, k: object, v: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q, k, v = (_validate.tensor(name, x) for name, x in (("q", q), ("k", k), ("v", v)))
    if q.ndim != 2 or 0 in q.shape:
        raise ValueError(
            f"q must be (N, d) with N, d > 0 (one head of one sequence, no batch dims), "
            f"got shape {tuple(q.shape)}"
        )
    for name, x in (("k", k), ("v", v)):
        if x.shape != q.shape:
            raise ValueError(f"{name} must be (N, d) like q {tuple(q.shape)}, got {tuple(x.shape)}")
        if x.dtype != q.dtype or x.device != q.device:
            raise TypeError(
                f"{name} must have q's dtype and device {q.dtype}/{q.device}, "
                f"got {x.dtype}/{x.device}"
            )
    return q, k, v
