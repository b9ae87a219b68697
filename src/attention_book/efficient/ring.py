"""Ring attention: a sequence split across processes that pass key-value blocks around a ring."""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import start_processes

from .. import _validate
from ._common import _attention_with_lse, _check_causal, _check_qkv, _scale
from .flash import merge_partial_attention

__all__ = ["RingResult", "ring_attention", "run_ring_attention"]


@dataclass(frozen=True)
class RingResult:
    """What :func:`run_ring_attention` returns: the output and what the ring sent.

    Introduced in :ref:`sec-quadratic-wall`; built step by step in the page on ring attention.
    """

    output: torch.Tensor
    world_size: int
    bytes_sent_per_rank: int


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

    Introduced in :ref:`sec-quadratic-wall`; built step by step in the page on ring attention.
    """
    q, k, v = _check_qkv(q, k, v)
    if k.shape[-2] != q.shape[-2]:
        raise ValueError(
            f"each rank needs as many keys as queries, got q {tuple(q.shape)}, k {tuple(k.shape)}"
        )
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {type(causal).__name__}")
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("ring_attention needs an initialised torch.distributed process group")
    scale = _scale(scale, q.shape[-1])
    rank, world = dist.get_rank(), dist.get_world_size()
    n = q.shape[-2]
    out = torch.zeros_like(q[..., :1]).expand(*q.shape[:-1], v.shape[-1]).contiguous()
    lse = torch.full(q.shape[:-1], -math.inf, dtype=q.dtype, device=q.device)
    block = torch.cat([k, v], dim=-1).contiguous()  # one message per step: [k, v]
    sent = 0
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
            sent += block.numel() * block.element_size()
        if not causal or source <= rank:
            mask = own_mask if causal and source == rank else None
            part, part_lse = _attention_with_lse(
                q, block[..., : k.shape[-1]], block[..., k.shape[-1] :], scale, mask
            )
            out, lse = merge_partial_attention(out, lse, part, part_lse)
        for request in requests:
            if request is not None:
                request.wait()
        block = incoming
    return out, sent


def _ring_worker(
    rank: int,
    world: int,
    init_file: str,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool,
    results: dict[int, tuple[torch.Tensor, int]],
) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        n = q.shape[-2] // world
        part = slice(rank * n, (rank + 1) * n)
        out, sent = ring_attention(
            q[..., part, :].contiguous(),
            k[..., part, :].contiguous(),
            v[..., part, :].contiguous(),
            causal=causal,
        )
        results[rank] = (out, sent)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_ring_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, world_size: int, causal: bool = False
) -> RingResult:
    """Run :func:`ring_attention` on ``world_size`` local processes and gather the output.

    Each process gets one contiguous block of the sequence and talks to its neighbours over
    ``torch.distributed``'s gloo backend, as machines in a cluster would over a network.

    Args:
        q: queries ``(..., N, d)`` on the CPU; ``N`` divisible by ``world_size``.
        k: keys ``(..., N, d)``.
        v: values ``(..., N, d_v)``.
        world_size: number of processes, > 0.
        causal: each query sees only keys at its own position or earlier.

    Returns:
        A :class:`RingResult` with the output ``(..., N, d_v)`` and the bytes each rank sent.

    Introduced in :ref:`sec-quadratic-wall`; built step by step in the page on ring attention.
    """
    q, k, v = _check_qkv(q, k, v)
    world = _validate.positive_int("world_size", world_size)
    n = q.shape[-2]
    if k.shape[-2] != n or n % world:
        raise ValueError(
            f"q and k must have the same length N divisible by world_size={world}, got "
            f"q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if q.device.type != "cpu":
        raise ValueError(f"run_ring_attention runs on CPU processes, got tensors on {q.device}")
    _check_causal(causal, n, n)
    with mp.Manager() as manager, tempfile.TemporaryDirectory() as folder:
        results = manager.dict()
        start_processes(
            _ring_worker,
            args=(world, os.path.join(folder, "rendezvous"), q, k, v, causal, results),
            nprocs=world,
            join=True,
            start_method="spawn",
        )
        parts = [results[r] for r in range(world)]
    output = torch.cat([out for out, _ in parts], dim=-2)
    return RingResult(output, world, parts[0][1])
