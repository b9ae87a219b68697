"""A paged KV cache (vLLM's PagedAttention), and a simulator of serving with and without it."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .. import _validate
from ..attention import causal_mask
from ..efficient import KVCache, repeat_kv

__all__ = [
    "OutOfBlocksError",
    "PagedKVCache",
    "PagedSequenceCache",
    "Request",
    "ServingStats",
    "request_stream",
    "simulate_serving",
]


class OutOfBlocksError(MemoryError):
    """The pool has fewer free blocks than an append needs; nothing was changed.

    Introduced in :ref:`sec-paged-cache`.
    """


class PagedKVCache:
    """One layer's keys and values for many sequences, in blocks of a shared pool.

    ``keys`` and ``values`` are ``(num_blocks, block_size, num_heads, d_head)``. Position ``i``
    of a sequence with block table ``table`` sits in block ``table[i // block_size]`` at offset
    ``i % block_size``: slot ``table[i // block_size] * block_size + i % block_size`` of the
    pool seen as ``(num_blocks * block_size, num_heads, d_head)``.

    Introduced in :ref:`sec-paged-cache`.
    """

    def __init__(
        self,
        num_blocks: int,
        block_size: int,
        num_heads: int,
        d_head: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        """Allocate the pool; every block starts on the free list.

        Args:
            num_blocks: blocks in the pool, > 0.
            block_size: positions per block, > 0 (vLLM's default is 16).
            num_heads, d_head: key/value heads and the size of each key and value, > 0.
            dtype, device: of the pool (floating point); appended keys and values match it.
        """
        self.num_blocks = _validate.positive_int("num_blocks", num_blocks)
        self.block_size = _validate.positive_int("block_size", block_size)
        self.num_heads = _validate.positive_int("num_heads", num_heads)
        self.d_head = _validate.positive_int("d_head", d_head)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype}")
        shape = (num_blocks, block_size, num_heads, d_head)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)  # (num_blocks, bs, H, d)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.free_list = list(range(num_blocks))  # free blocks, taken from the front
        self._refs = [0] * num_blocks  # how many block tables hold each block
        self._tables: dict[Hashable, list[int]] = {}
        self._lengths: dict[Hashable, int] = {}

    def _check(self, seq_id: Hashable) -> None:
        if seq_id not in self._tables:
            known = ", ".join(map(repr, self._tables))
            raise ValueError(
                f"seq_id {seq_id!r} is not in the cache, which holds {len(self._tables)} "
                f"sequence(s): [{known}]; start one with new_sequence({seq_id!r})"
            )

    def new_sequence(self, seq_id: Hashable) -> None:
        """Start an empty sequence ``seq_id`` (any new hashable): an empty block table."""
        if seq_id in self._tables:
            raise ValueError(f"seq_id {seq_id!r} is already in the cache")
        self._tables[seq_id], self._lengths[seq_id] = [], 0

    def block_table(self, seq_id: Hashable) -> list[int]:
        """Return a copy of the sequence's block table: its blocks' numbers, in order."""
        self._check(seq_id)
        return list(self._tables[seq_id])

    def length(self, seq_id: Hashable) -> int:
        """Return the number of positions the sequence holds."""
        self._check(seq_id)
        return self._lengths[seq_id]

    @property
    def ref_counts(self) -> list[int]:
        """The number of block tables that hold each block; 0 means the block is free."""
        return list(self._refs)

    @property
    def nbytes(self) -> int:
        """The size of the pool in bytes.

        That is ``2 * num_blocks * block_size * num_heads * d_head * itemsize``, whatever the
        sequences hold.
        """
        return self.keys.nbytes + self.values.nbytes

    def _take(self) -> int:
        block = self.free_list.pop(0)
        self._refs[block] = 1
        return block

    def _release(self, block: int) -> None:
        self._refs[block] -= 1
        if self._refs[block] == 0:
            self.free_list.append(block)

    def append(self, seq_id: Hashable, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write the keys and values of new positions after the sequence's last one.

        All or nothing: with too few free blocks, :class:`OutOfBlocksError` is raised before
        anything is taken or written. A shared, partly filled last block is copied first.

        Args:
            seq_id: a sequence in the cache.
            k: keys ``(num_heads, n_new, d_head)``, in the pool's dtype.
            v: values, the same shape.
        """
        self._check(seq_id)
        for name, x in (("k", k), ("v", v)):
            x = _validate.tensor(name, x, min_ndim=3)
            if x.ndim != 3 or x.shape[0] != self.num_heads or x.shape[2] != self.d_head:
                raise ValueError(
                    f"{name} must be (num_heads, n_new, d_head) = ({self.num_heads}, n_new, "
                    f"{self.d_head}), got {tuple(x.shape)}"
                )
            if x.dtype != self.keys.dtype:
                raise TypeError(
                    f"{name} must have the pool's dtype {self.keys.dtype}, got {x.dtype}"
                )
        if v.shape != k.shape:
            raise ValueError(f"v must have k's shape {tuple(k.shape)}, got {tuple(v.shape)}")
        table, length, size = self._tables[seq_id], self._lengths[seq_id], self.block_size
        n_new = k.shape[1]
        copy = bool(length % size and n_new) and self._refs[table[-1]] > 1  # shared, partly filled
        needed = math.ceil((length + n_new) / size) - len(table) + copy
        if needed > len(self.free_list):
            raise OutOfBlocksError(
                f"seq_id {seq_id!r} needs {needed} free block(s) of {size} positions for "
                f"{n_new} new position(s), but only {len(self.free_list)} of {self.num_blocks} "
                "are free; nothing was written (free a sequence or make the pool larger)"
            )
        if copy:  # copy-on-write: the other sequences keep the old block
            old, table[-1] = table[-1], self._take()
            self.keys[table[-1]], self.values[table[-1]] = self.keys[old], self.values[old]
            self._release(old)
        while len(table) * size < length + n_new:
            table.append(self._take())
        pos = torch.arange(length, length + n_new)
        blocks = torch.tensor(table, dtype=torch.long)[pos // size]
        slots = (blocks * size + pos % size).to(self.keys.device)  # (n_new,)
        self.keys.view(-1, self.num_heads, self.d_head)[slots] = k.transpose(0, 1)
        self.values.view(-1, self.num_heads, self.d_head)[slots] = v.transpose(0, 1)
        self._lengths[seq_id] = length + n_new

    def gather(self, seq_id: Hashable) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the keys and values ``(num_heads, length, d_head)``, in position order."""
        self._check(seq_id)
        table = torch.tensor(self._tables[seq_id], dtype=torch.long, device=self.keys.device)
        length = self._lengths[seq_id]
        keys = self.keys[table].flatten(0, 1)[:length]  # (length, H, d): blocks in table order
        values = self.values[table].flatten(0, 1)[:length]
        return keys.transpose(0, 1).contiguous(), values.transpose(0, 1).contiguous()

    def attend(self, seq_id: Hashable, q: torch.Tensor) -> torch.Tensor:
        """Causal attention of the sequence's last ``n`` positions over all its positions.

        Args:
            seq_id: a sequence in the cache, holding ``length >= n`` positions.
            q: queries ``(H_q, n, d_head)`` of positions ``length - n .. length - 1``, with
                ``H_q`` a multiple of ``num_heads`` (groups of query heads share a key head).

        Returns:
            ``(H_q, n, d_head)``.
        """
        q = _validate.tensor("q", q, min_ndim=3)
        keys, values = self.gather(seq_id)  # (H, M, d)
        m = keys.shape[1]
        if (
            q.ndim != 3
            or q.shape[0] % self.num_heads
            or q.shape[2] != self.d_head
            or not 0 < q.shape[1] <= m
        ):
            raise ValueError(
                f"q must be (H_q, n, d_head) with H_q a multiple of num_heads={self.num_heads}, "
                f"1 <= n <= length={m} and d_head={self.d_head}, got {tuple(q.shape)}"
            )
        group = q.shape[0] // self.num_heads
        keys, values = repeat_kv(keys, group), repeat_kv(values, group)  # (H_q, M, d)
        mask = causal_mask(q.shape[1], m, device=q.device)  # (n, M): the last n positions
        return F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)

    def fork(self, parent: Hashable, child: Hashable) -> None:
        """Start ``child`` as a copy of ``parent`` sharing all its blocks; no data is copied."""
        self._check(parent)
        if child in self._tables:
            raise ValueError(f"seq_id {child!r} is already in the cache")
        self._tables[child] = list(self._tables[parent])
        self._lengths[child] = self._lengths[parent]
        for block in self._tables[child]:
            self._refs[block] += 1

    def free(self, seq_id: Hashable) -> None:
        """Forget the sequence; blocks no other sequence holds go back to the free list."""
        self._check(seq_id)
        for block in self._tables.pop(seq_id):
            self._release(block)
        del self._lengths[seq_id]


class PagedSequenceCache(KVCache):
    """One sequence of a :class:`PagedKVCache` seen as a ``KVCache`` (a batch of one).

    ``DecoderLM(ids, caches)`` calls :meth:`update` with ``(1, num_heads, n_new, d_head)`` keys
    and values and reads :attr:`length`; both go to the paged cache, so a model decodes
    through blocks without knowing it.

    Introduced in :ref:`sec-paged-cache`.
    """

    def __init__(self, cache: PagedKVCache, seq_id: Hashable) -> None:
        """Wrap the sequence ``seq_id`` (already started) of ``cache``."""
        cache.length(seq_id)  # raises, naming it, if the cache does not know it
        self.cache, self.seq_id = cache, seq_id
        self.max_len = cache.num_blocks * cache.block_size
        self._keys = self._values = None

    @property
    def length(self) -> int:
        """Positions the sequence holds."""
        return self.cache.length(self.seq_id)

    @length.setter
    def length(self, value: int) -> None:
        if value != self.length:
            raise ValueError("a paged sequence's length follows its blocks: append, or free it")

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``(1, H, n_new, d)`` keys and values; return all, ``(1, H, length, d)``."""
        if _validate.tensor("k", k).ndim != 4 or k.shape[0] != 1 or v.shape[:1] != (1,):
            shapes = f"{tuple(k.shape)} and {tuple(v.shape)}"
            raise ValueError(f"k and v must be (1, num_heads, n_new, d_head), got {shapes}")
        self.cache.append(self.seq_id, k[0], v[0])
        keys, values = self.cache.gather(self.seq_id)
        return keys[None], values[None]

    @property
    def nbytes(self) -> int:
        """Bytes of the blocks the sequence holds (shared blocks counted in full)."""
        per_block = self.cache.nbytes // self.cache.num_blocks
        return per_block * len(self.cache.block_table(self.seq_id))


@dataclass(frozen=True, eq=False)  # eq=False: two equal requests stay two
class Request:
    """One request of a simulated stream: when it arrives and how long it is.

    Introduced in :ref:`sec-paged-cache`.
    """

    arrival: int  # the step at which it arrives
    prompt: int  # prompt tokens, processed in one pass when it is admitted
    output: int  # tokens it generates, one per step


def request_stream(
    num_requests: int,
    duration: int,
    max_len: int,
    generator: torch.Generator,
    prompt_len: tuple[int, int] = (16, 128),
    output_len: tuple[int, int] = (1, 384),
) -> list[Request]:
    """Draw requests that arrive uniformly over ``duration`` steps, with uniform lengths.

    Args:
        num_requests: requests, > 0.
        duration: steps over which they arrive, > 0 (fewer steps: a higher load).
        max_len: the longest request; outputs are cut so that prompt + output fit.
        generator: the random stream (``make_generator(seed)``), integer draws only.
        prompt_len: shortest and longest prompt, ``1 <= lo <= hi < max_len``.
        output_len: shortest and longest output, ``1 <= lo <= hi``.

    Returns:
        The requests, sorted by arrival.

    Introduced in :ref:`sec-paged-cache`.
    """
    n = _validate.positive_int("num_requests", num_requests)
    duration = _validate.positive_int("duration", duration)
    max_len = _validate.positive_int("max_len", max_len)
    for name, (lo, hi) in (("prompt_len", prompt_len), ("output_len", output_len)):
        if not 1 <= lo <= hi or (name == "prompt_len" and hi >= max_len):
            raise ValueError(f"{name} must be (lo, hi), 1 <= lo <= hi, got {(lo, hi)}")
    arrivals = torch.randint(duration, (n,), generator=generator).sort().values
    prompts = torch.randint(prompt_len[0], prompt_len[1] + 1, (n,), generator=generator)
    outputs = torch.randint(output_len[0], output_len[1] + 1, (n,), generator=generator)
    return [
        Request(int(a), int(p), min(int(o), max_len - int(p)))
        for a, p, o in zip(arrivals, prompts, outputs, strict=True)
    ]


@dataclass
class ServingStats:
    """What :func:`simulate_serving` measured at every step, and the preemptions.

    Introduced in :ref:`sec-paged-cache`.
    """

    used: list[int]  # positions holding keys and values at the end of the step
    allocated: list[int]  # positions reserved (contiguous) or in held blocks (paged)
    running: list[int]  # requests decoded in the step (the mean: requests served at once)
    preemptions: int = 0  # requests sent back to the queue when the blocks ran out

    @property
    def used_share(self) -> float:
        """Share of the allocated memory that held keys and values, over all steps."""
        return sum(self.used) / max(1, sum(self.allocated))


def simulate_serving(
    requests: list[Request], memory: int, max_len: int, block_size: int | None = None
) -> ServingStats:
    """Serve a stream first come, first served, one new token per running request per step.

    Contiguous (``block_size=None``): an admitted request reserves ``max_len`` positions.
    Paged: it holds ``ceil(length / block_size)`` blocks and takes one when its last is full;
    when none is free, the request admitted last goes back to the queue, its blocks freed and
    its tokens to be recomputed when it is admitted again (vLLM's recomputation).

    Args:
        requests: the stream, from :func:`request_stream`.
        memory: cache capacity in positions, ``>= max_len``.
        max_len: the longest request, > 0 (what contiguous serving reserves).
        block_size: positions per block, > 0, or ``None`` for contiguous.

    Returns:
        A :class:`ServingStats`, one entry per step until the last request is done.

    Introduced in :ref:`sec-paged-cache`.
    """
    max_len = _validate.positive_int("max_len", max_len)
    if _validate.positive_int("memory", memory) < max_len:
        raise ValueError(f"memory must hold max_len={max_len} positions or more, got {memory}")
    size = max_len if block_size is None else _validate.positive_int("block_size", block_size)
    capacity = memory // size  # contiguous: one "block" of max_len per request

    def blocks(n: int) -> int:
        return 1 if block_size is None else math.ceil(n / size)

    pending = sorted(requests, key=lambda r: r.arrival)[::-1]  # popped from the end
    waiting: list[tuple[Request, int]] = []  # (request, its length so far)
    running: dict[Request, int] = {}  # request -> length, in the order of admission
    stats, held, step = ServingStats([], [], []), 0, 0
    while pending or waiting or running:
        while pending and pending[-1].arrival <= step:
            request = pending.pop()
            waiting.append((request, request.prompt))
        while waiting and capacity - held >= blocks(waiting[0][1] + 1):
            request, length = waiting.pop(0)  # its prompt (and earlier tokens) in one pass
            running[request], held = length, held + blocks(length)
        decoded = 0
        for request in list(running):
            if request not in running:  # preempted earlier in this step
                continue
            length = running[request]
            grow = blocks(length + 1) - blocks(length)
            while grow and held == capacity and request in running:
                victim = next(reversed(running))  # the request admitted last
                held -= blocks(running[victim])
                waiting.insert(0, (victim, running.pop(victim)))
                stats.preemptions += 1
            if request not in running:
                continue
            held, running[request], decoded = held + grow, length + 1, decoded + 1
            if length + 1 == request.prompt + request.output:
                held -= blocks(running.pop(request))
        stats.used.append(sum(running.values()))
        stats.allocated.append(held * size)
        stats.running.append(decoded)
        step += 1
    return stats
