"""Ring attention over local processes: exact, with counted bytes and work; its checkers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attention_book import checks
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


# --- check_ring_step ---------------------------------------------------------------------


def ring_step(out, lse, q, k, v):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    part_lse = torch.logsumexp(s, -1)
    new_lse = torch.logaddexp(lse, part_lse)
    safe = torch.where(torch.isfinite(new_lse), new_lse, torch.zeros_like(new_lse))
    part = torch.softmax(s, -1) @ v
    out = torch.exp(lse - safe)[..., None] * out + torch.exp(part_lse - safe)[..., None] * part
    return out, new_lse


def unscaled(out, lse, q, k, v):  # forgets 1 / sqrt(d)
    return ring_step(out, lse, q * math.sqrt(q.shape[-1]), k, v)


def no_shift(out, lse, q, k, v):  # exp of raw scores: overflows
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weight, total = torch.exp(s), torch.exp(lse)
    new_total = total + weight.sum(-1)
    out = (total[..., None] * out + weight @ v) / new_total[..., None]
    return out, torch.log(new_total)


def adds_outputs(out, lse, q, k, v):  # no reweighting: out + part
    new_out, new_lse = ring_step(torch.zeros_like(out), torch.full_like(lse, -math.inf), q, k, v)
    return out + new_out, torch.logaddexp(lse, new_lse)


def keeps_lse(out, lse, q, k, v):  # merges the outputs but returns the old lse
    new_out, _ = ring_step(out, lse, q, k, v)
    return new_out, torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))


def only_the_new_block(out, lse, q, k, v):  # forgets what came before
    return ring_step(torch.zeros_like(out), torch.full_like(lse, -math.inf), q, k, v)


def two_dims_only(out, lse, q, k, v):  # transposes dims 0 and 1: right for matrices only
    s = q @ k.transpose(0, 1) / math.sqrt(q.shape[-1])
    part_lse = torch.logsumexp(s, -1)
    new_lse = torch.logaddexp(lse, part_lse)
    part = torch.softmax(s, -1) @ v
    out = (
        torch.exp(lse - new_lse)[..., None] * out + torch.exp(part_lse - new_lse)[..., None] * part
    )
    return out, new_lse


def test_check_ring_step_accepts_the_reference(capsys):
    assert checks.check_ring_step(ring_step) is True
    assert "passes all 4 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (unscaled, "the first step"),
        (no_shift, "scores in the thousands"),
        (adds_outputs, "two steps"),
        (keeps_lse, "the first step (out = 0, lse = -inf): attention over one block (lse)"),
        (only_the_new_block, "two steps"),
        (two_dims_only, "batch and head dims"),
        (lambda out, lse, q, k, v: out, "expected a pair (out, lse)"),
    ],
)
def test_check_ring_step_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_ring_step(wrong) is False
    assert named_property in capsys.readouterr().out


# --- check_causal_ring_skips -------------------------------------------------------------


def skips(world_size):
    return [(r, s) for r in range(world_size) for s in range(world_size) if s > r]


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (lambda p: [(r, s) for r in range(p) for s in range(p) if s >= r], "one rank"),
        (lambda p: [(r, s) for r in range(p) for s in range(p) if s < r], "two ranks"),
        (lambda p: [(r, s) for r in range(p) for s in range(p) if (r - s) % p < r], "two ranks"),
        (lambda p: [(s, r) for r in range(p) for s in range(p) if s > r], "two ranks"),
        (lambda p: [(r, s) for r in range(p) for s in range(1, p) if s > r][:2], "four ranks"),
        (lambda p: p * (p - 1) // 2, "a collection of (rank, step) pairs"),
    ],
)
def test_check_causal_ring_skips(wrong, named_property, capsys):
    assert checks.check_causal_ring_skips(skips) is True
    assert checks.check_causal_ring_skips(lambda p: {(r, s) for r, s in skips(p)}) is True
    capsys.readouterr()
    assert checks.check_causal_ring_skips(wrong) is False
    assert named_property in capsys.readouterr().out


@pytest.mark.parametrize("checker", [checks.check_ring_step, checks.check_causal_ring_skips])
def test_ring_checkers_reject_non_functions(checker):
    with pytest.raises(TypeError, match="must be a function"):
        checker(3)
