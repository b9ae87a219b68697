"""Ring attention over local processes: exact, with counted bytes and work."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attention_book.efficient import RingResult, run_ring_attention


def qkv(n, d=8, d_v=4, lead=(2, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(*lead, n, d, generator=g),
        torch.randn(*lead, n, d, generator=g),
        torch.randn(*lead, n, d_v, generator=g),
    )


def block_bytes(lead, n_per_rank, d, d_v):
    """One rank's keys and values, sent as one float32 message."""
    return math.prod(lead) * n_per_rank * (d + d_v) * 4


# --- run_ring_attention ------------------------------------------------------------------


def test_three_ranks_are_exact_and_each_sends_two_blocks():
    q, k, v = qkv(12)
    result = run_ring_attention(q, k, v, world_size=3, repeats=2)
    assert isinstance(result, RingResult) and result.world_size == 3
    torch.testing.assert_close(result.output, F.scaled_dot_product_attention(q, k, v))
    sent = 2 * block_bytes((2, 3), 4, 8, 4)  # (P - 1) blocks of 4 positions
    assert result.bytes_sent == (sent, sent, sent) and result.bytes_sent_per_rank == sent
    assert result.blocks_computed == (3, 3, 3)
    for times in (result.compute_seconds, result.wait_seconds, result.seconds):
        assert len(times) == 3 and all(t >= 0 for t in times)
    assert all(c <= s for c, s in zip(result.compute_seconds, result.seconds, strict=True))


def test_a_causal_ring_skips_the_blocks_of_later_ranks():
    q, k, v = qkv(16, lead=(1,))
    result = run_ring_attention(q, k, v, world_size=4, causal=True)
    torch.testing.assert_close(
        result.output, F.scaled_dot_product_attention(q, k, v, is_causal=True)
    )
    assert result.blocks_computed == (1, 2, 3, 4)  # rank r sees the blocks of ranks 0..r
    assert set(result.bytes_sent) == {3 * block_bytes((1,), 4, 8, 4)}  # but passes all on


def test_a_ring_of_one_sends_nothing():
    q, k, v = qkv(5, lead=())
    result = run_ring_attention(q, k, v, world_size=1, causal=True)
    torch.testing.assert_close(
        result.output, F.scaled_dot_product_attention(q, k, v, is_causal=True)
    )
    assert result.bytes_sent == (0,) and result.blocks_computed == (1,)


def test_run_ring_attention_rejects_bad_repeats():
    q, k, v = qkv(4)
    with pytest.raises(ValueError, match="repeats must be > 0"):
        run_ring_attention(q, k, v, world_size=2, repeats=0)
    with pytest.raises(TypeError, match="repeats must be an int"):
        run_ring_attention(q, k, v, world_size=2, repeats=1.0)  # type: ignore[arg-type]
