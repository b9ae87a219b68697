"""Ring attention: a sequence split across processes that pass key-value blocks around a ring."""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.multiprocessing.spawn import start_processes

from .. import _validate
from ._common import _attention_with_lse, _check_causal, _check_qkv, _scale
from .flash import merge_partial_attention

__all__ = ["RingResult", "ring_attention", "run_ring_attention"]


@dataclass(frozen=True)
class RingResult:
    """What :func:`run_ring_attention` returns: the output, what each rank sent and did.

    Every tuple has one entry per rank. The times are medians over the timed passes (each
    pass starts on all ranks at once, after a barrier).

    Attributes:
        output: the attention output ``(..., N, d_v)``, the ranks' blocks in order.
        world_size: the number of processes ``P``.
        bytes_sent: bytes each rank sent to its neighbour in one pass.
        blocks_computed: key-value blocks each rank attended to (``P``, or ``rank + 1``
            when causal).
        compute_seconds: CPU time each rank spent computing partial results and merging
            them: when ranks share a core, one is not charged for the others' turns.
        wait_seconds: wall-clock time each rank spent waiting for its neighbour's block.
        seconds: each rank's whole pass, from the barrier to its finished output.

    Introduced in :ref:`sec-ring-attention`.
    """

    output: torch.Tensor
    world_size: int
    bytes_sent: tuple[int, ...]
    blocks_computed: tuple[int, ...]
    compute_seconds: tuple[float, ...]
    wait_seconds: tuple[float, ...]
    seconds: tuple[float, ...]

    @property
    def bytes_sent_per_rank(self) -> int:
        """The bytes one rank sent in one pass, ``P - 1`` blocks of keys and values."""
        return max(self.bytes_sent)


@dataclass
class _PassStats:
    """What one rank did in one ring pass."""

    bytes_sent: int = 0
    blocks: int = 0
    compute_s: float = 0.0
    wait_s: float = 0.0


def _ring_pass(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float
) -> tuple[torch.Tensor, _PassStats]:
    """One rank's part of ring attention, timing its computing and its waiting."""
    rank, world = dist.get_rank(), dist.get_world_size()
    n, d = q.shape[-2], k.shape[-1]
    stats = _PassStats()
    out = torch.zeros_like(q[..., :1]).expand(*q.shape[:-1], v.shape[-1]).contiguous()
    lse = torch.full(q.shape[:-1], -math.inf, dtype=q.dtype, device=q.device)
    block = torch.cat([k, v], dim=-1).contiguous()  # one message per step: [k, v]
    own_mask = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
    for step in range(world):
        source = (rank - step) % world  # whose keys and values we hold now
        incoming = torch.empty_like(block)
        requests = []
        if step < world - 1:  # pass the block on while we compute with it
            requests = [
                dist.isend(block, (rank + 1) % world),
                dist.irecv(incoming, (rank - 1) % world),
            ]
            stats.bytes_sent += block.numel() * block.element_size()
        if not causal or source <= rank:  # causal: blocks from later ranks are all masked
            start = time.thread_time()  # CPU time: not charged for other processes' turns
            mask = own_mask if causal and source == rank else None
            part, part_lse = _attention_with_lse(q, block[..., :d], block[..., d:], scale, mask)
            out, lse = merge_partial_attention(out, lse, part, part_lse)
            stats.compute_s += time.thread_time() - start
            stats.blocks += 1
        start = time.perf_counter()
        for request in requests:
            if request is not None:
                request.wait()
        stats.wait_s += time.perf_counter() - start
        block = incoming
    return out, stats


def ring_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, int]:
    """Attend over a sequence split across the processes of a ring; call it on every rank.

    Rank ``r`` of ``P`` holds the ``r``-th contiguous block of queries, keys and values. In
    ``P`` steps each rank attends its queries to the key-value block it holds, merges the
    partial result into its running one with :func:`merge_partial_attention`, and passes the
    block to rank ``r + 1`` while receiving the next from rank ``r - 1``. No rank ever holds
    more than two blocks of keys and values. With ``causal=True``, blocks from later ranks are
    skipped and the rank's own block is masked.

    Args:
        q: this rank's queries ``(..., n, d)``; every rank has the same shapes.
        k: this rank's keys ``(..., n, d)``.
        v: this rank's values ``(..., n, d_v)``.
        causal: each query sees only keys at its own position or earlier.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``.

    Returns:
        ``(output, bytes_sent)``: this rank's output ``(..., n, d_v)`` and how many bytes it
        sent to its neighbour.

    Introduced in :ref:`sec-ring-attention`.
    """
    q, k, v = _check_qkv(q, k, v)
    if k.shape[-2] != q.shape[-2]:
        raise ValueError(
            f"each rank needs as many keys as queries, got q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    causal = _check_causal(causal, q.shape[-2], k.shape[-2])
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("ring_attention needs an initialised torch.distributed process group")
    out, stats = _ring_pass(q, k, v, causal, _scale(scale, q.shape[-1]))
    return out, stats.bytes_sent


def _ring_worker(
    rank: int,
    world: int,
    folder: str,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    repeats: int,
) -> None:
    torch.set_num_threads(1)
    init = f"file://{os.path.join(folder, 'rendezvous')}"
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        n = q.shape[-2] // world
        part = slice(rank * n, (rank + 1) * n)
        mq, mk, mv = (x[..., part, :].contiguous() for x in (q, k, v))
        scale = _scale(None, q.shape[-1])
        _ring_pass(mq, mk, mv, causal, scale)  # a warm-up: the first pass pays for lazy set-up
        passes = []
        for _ in range(repeats):
            dist.barrier()  # every rank starts the pass at the same moment
            start = time.perf_counter()
            out, stats = _ring_pass(mq, mk, mv, causal, scale)
            passes.append((time.perf_counter() - start, stats))
        torch.save(
            {
                "output": out,
                "bytes_sent": stats.bytes_sent,
                "blocks": stats.blocks,
                "compute_s": statistics.median(s.compute_s for _, s in passes),
                "wait_s": statistics.median(s.wait_s for _, s in passes),
                "seconds": statistics.median(t for t, _ in passes),
            },
            os.path.join(folder, f"rank{rank}.pt"),
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ring_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    world_size: int,
    causal: bool = False,
    repeats: int = 1,
) -> RingResult:
    """Run :func:`ring_attention` on ``world_size`` local processes and gather the output.

    Each process gets one contiguous block of the sequence and talks to its neighbours over
    ``torch.distributed``'s gloo backend, as machines in a cluster would over a network. Each
    process uses one thread. Starting the processes takes a few seconds (each imports
    PyTorch), which the times in the result leave out: each process first runs one untimed
    pass, then ``repeats`` timed ones.

    Args:
        q: queries ``(..., N, d)`` on the CPU; ``N`` divisible by ``world_size``.
        k: keys ``(..., N, d)``.
        v: values ``(..., N, d_v)``.
        world_size: number of processes, > 0.
        causal: each query sees only keys at its own position or earlier.
        repeats: timed passes, > 0; the result reports each rank's median.

    Returns:
        A :class:`RingResult` with the output ``(..., N, d_v)`` and, per rank, the bytes sent,
        the blocks computed and the times.

    Introduced in :ref:`sec-quadratic-wall`, explained in :ref:`sec-ring-attention`.
    """
    q, k, v = _check_qkv(q, k, v)
    world = _validate.positive_int("world_size", world_size)
    repeats = _validate.positive_int("repeats", repeats)
    n = q.shape[-2]
    if k.shape[-2] != n or n % world:
        raise ValueError(
            f"q and k must have the same length N divisible by world_size={world}, got "
            f"q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if q.device.type != "cpu":
        raise ValueError(f"run_ring_attention runs on CPU processes, got tensors on {q.device}")
    _check_causal(causal, n, n)
    with tempfile.TemporaryDirectory() as folder:
        start_processes(
            _ring_worker,
            args=(world, folder, q, k, v, causal, repeats),
            nprocs=world,
            join=True,
            start_method="spawn",
        )
        ranks = [torch.load(os.path.join(folder, f"rank{r}.pt")) for r in range(world)]
    return RingResult(
        output=torch.cat([r["output"] for r in ranks], dim=-2),
        world_size=world,
        bytes_sent=tuple(r["bytes_sent"] for r in ranks),
        blocks_computed=tuple(r["blocks"] for r in ranks),
        compute_seconds=tuple(r["compute_s"] for r in ranks),
        wait_seconds=tuple(r["wait_s"] for r in ranks),
        seconds=tuple(r["seconds"] for r in ranks),
    )
