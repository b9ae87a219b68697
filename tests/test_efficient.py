"""Efficient attention: exact against PyTorch, linear attention against its formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attention_book.attention import causal_mask
from attention_book.bench import peak_memory
from attention_book.efficient import (
    KVCache,
    flash_attention,
    linear_attention,
    merge_partial_attention,
    ring_attention,
    run_ring_attention,
    sliding_window_attention,
)


def qkv(n, m, d=16, d_v=8, lead=(2, 3), dtype=torch.float32, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    q = spread * torch.randn(*lead, n, d, generator=g, dtype=dtype)
    k = spread * torch.randn(*lead, m, d, generator=g, dtype=dtype)
    v = torch.randn(*lead, m, d_v, generator=g, dtype=dtype)
    return q, k, v


def sdpa(q, k, v, mask=None):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


# --- flash_attention ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "m", "block_size"),
    [
        (100, 100, (32, 16)),
        (100, 100, 7),
        (37, 100, (5, 64)),
        (37, 100, 7),
        (256, 256, (64, 96)),
        (256, 256, (1024, 1024)),
        (1, 5, 7),
        (130, 64, (32, 16)),
        (130, 64, (1024, 1024)),
    ],
)
def test_flash_matches_pytorch(n, m, block_size):
    q, k, v = qkv(n, m)
    out = flash_attention(q, k, v, block_size=block_size)
    torch.testing.assert_close(out, sdpa(q, k, v), atol=1e-5, rtol=0)
    if n <= m:
        out = flash_attention(q, k, v, causal=True, block_size=block_size)
        torch.testing.assert_close(out, sdpa(q, k, v, causal_mask(n, m)), atol=1e-5, rtol=0)


def test_flash_at_the_benchmark_shape():
    q, k, v = qkv(1000, 1000, d=64, d_v=64, lead=(1, 8))  # 1000: not a multiple of a block
    for causal in (False, True):
        mask = causal_mask(1000) if causal else None
        out = flash_attention(q, k, v, causal=causal, block_size=(256, 384))
        assert (out - sdpa(q, k, v, mask)).abs().max() <= 1e-5


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40),
    extra=st.integers(0, 40),
    block_q=st.integers(1, 48),
    block_k=st.integers(1, 48),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_flash_property_tiled_equals_exact(n, extra, block_q, block_k, causal, seed):
    q, k, v = qkv(n, n + extra, d=4, d_v=3, lead=(2,), dtype=torch.float64, seed=seed)
    mask = causal_mask(n, n + extra) if causal else None
    out = flash_attention(q, k, v, causal=causal, block_size=(block_q, block_k))
    torch.testing.assert_close(out, sdpa(q, k, v, mask), atol=1e-10, rtol=0)


def test_flash_rescales_when_scores_could_overflow():
    # scores in the thousands: the bound fails and the textbook online-softmax step runs
    q, k, v = qkv(120, 120, dtype=torch.float64, spread=40.0)
    scores = (q @ k.transpose(-2, -1)).abs().max() / 4
    assert scores > 1000
    for causal in (False, True):
        mask = causal_mask(120) if causal else None
        out = flash_attention(q, k, v, causal=causal, block_size=(16, 24))
        torch.testing.assert_close(out, sdpa(q, k, v, mask), atol=1e-10, rtol=0)


def test_flash_keeps_dtype_and_handles_half_precision():
    q, k, v = qkv(50, 60, dtype=torch.bfloat16)
    out = flash_attention(q, k, v, block_size=16)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 3, 50, 8)
    want = sdpa(q.float(), k.float(), v.float())
    assert (out.float() - want).abs().max() < 2e-2


def test_flash_works_without_batch_dims_and_with_a_scale():
    q, k, v = qkv(9, 11, lead=())
    torch.testing.assert_close(
        flash_attention(q, k, v, scale=0.3, block_size=4),
        F.scaled_dot_product_attention(q, k, v, scale=0.3),
        atol=1e-6,
        rtol=0,
    )


def test_flash_never_holds_the_score_matrix():
    q, k, v = qkv(1024, 1024, d=32, d_v=32, lead=(1, 2))
    naive = peak_memory(lambda: torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v)
    tiled = peak_memory(lambda: flash_attention(q, k, v, block_size=(128, 128)))
    assert naive >= 2 * 1024 * 1024 * 4 * 2  # scores and weights, two heads
    assert tiled < naive / 10, (tiled, naive)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"block_size": 0}, ValueError, "block_size must be > 0, got 0"),
        ({"block_size": (4, -1)}, ValueError, r"block_size\[1\] must be > 0, got -1"),
        ({"block_size": 2.5}, TypeError, "block_size must be an int or a pair"),
        ({"block_size": (1, 2, 3)}, TypeError, "block_size must be an int or a pair"),
        ({"causal": 1}, TypeError, "causal must be a bool"),
        ({"scale": 0.0}, ValueError, "scale must be a finite number > 0"),
    ],
)
def test_flash_rejects_bad_arguments(kwargs, error, message):
    q, k, v = qkv(4, 4)
    with pytest.raises(error, match=message):
        flash_attention(q, k, v, **kwargs)


def test_efficient_functions_reject_mismatched_shapes():
    q, k, v = qkv(4, 6)
    for fn in (flash_attention, linear_attention):
        with pytest.raises(ValueError, match=r"k must be \(\.\.\., M, d\) with the leading dims"):
            fn(q, k[..., :5], v)
        with pytest.raises(ValueError, match=r"v must be \(\.\.\., M, d_v\) matching k"):
            fn(q, k, v[..., :5, :])
        with pytest.raises(TypeError, match="must share one dtype"):
            fn(q, k.double(), v)
        with pytest.raises(ValueError, match="causal attention needs N <= M"):
            fn(k, q, q[..., :4], causal=True)
    with pytest.raises(TypeError, match="q must be a torch.Tensor, got list"):
        flash_attention([1.0], k, v)


# --- merging partial results -------------------------------------------------------------


def test_merge_partial_attention_equals_attention_over_the_union():
    q, k, v = qkv(5, 12, dtype=torch.float64)
    parts = []
    for keys in (slice(0, 7), slice(7, 12)):
        s = q @ k[..., keys, :].transpose(-2, -1) / 4
        parts.append((torch.softmax(s, -1) @ v[..., keys, :], torch.logsumexp(s, -1)))
    out, lse = merge_partial_attention(*parts[0], *parts[1])
    torch.testing.assert_close(out, sdpa(q, k, v), atol=1e-12, rtol=0)
    torch.testing.assert_close(lse, torch.logsumexp(q @ k.transpose(-2, -1) / 4, -1))
    empty = (torch.zeros_like(out), torch.full_like(lse, -math.inf))  # no keys at all
    again, _ = merge_partial_attention(*empty, out, lse)
    torch.testing.assert_close(again, out)
    nothing, _ = merge_partial_attention(*empty, *empty)
    assert torch.equal(nothing, torch.zeros_like(out))
    with pytest.raises(ValueError, match="out_a and out_b must be"):
        merge_partial_attention(out, lse, out[..., :1], lse)


# --- sliding window ----------------------------------------------------------------------


def band(n, m, window, causal):
    i = torch.arange(n)[:, None] + m - n
    j = torch.arange(m)[None, :]
    return ((i - j < window) & (j <= i)) if causal else ((i - j).abs() < window)


@pytest.mark.parametrize(("n", "m"), [(100, 100), (37, 100), (5, 5)])
@pytest.mark.parametrize("window", [1, 3, 50, 500])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("block_size", [None, 4, 64])
def test_sliding_window_matches_masked_attention(n, m, window, causal, block_size):
    q, k, v = qkv(n, m)
    out = sliding_window_attention(q, k, v, window, causal=causal, block_size=block_size)
    want = sdpa(q, k, v, band(n, m, window, causal))
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


def test_sliding_window_as_wide_as_the_sequence_is_full_attention():
    q, k, v = qkv(30, 30)
    torch.testing.assert_close(
        sliding_window_attention(q, k, v, 30), sdpa(q, k, v, causal_mask(30)), atol=1e-6, rtol=0
    )


def test_sliding_window_rejects_bad_windows():
    q, k, v = qkv(6, 6)
    for window, error in [(0, ValueError), (-3, ValueError), (2.0, TypeError)]:
        with pytest.raises(error, match="window must be"):
            sliding_window_attention(q, k, v, window)
    with pytest.raises(ValueError, match="block_size must be > 0"):
        sliding_window_attention(q, k, v, 2, block_size=0)
    with pytest.raises(ValueError, match="needs N <= M"):
        sliding_window_attention(q, k[..., :3, :], v[..., :3, :], 2)


# --- linear attention --------------------------------------------------------------------


def linear_reference(q, k, v, mask=None):
    a = (F.elu(q) + 1) @ (F.elu(k) + 1).transpose(-2, -1)
    if mask is not None:
        a = a * mask
    return (a / a.sum(-1, keepdim=True)) @ v


@pytest.mark.parametrize(("n", "m"), [(100, 100), (37, 100), (1, 1)])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_linear_attention_matches_its_formula(n, m, chunk_size):
    q, k, v = qkv(n, m, dtype=torch.float64)
    torch.testing.assert_close(linear_attention(q, k, v), linear_reference(q, k, v))
    out = linear_attention(q, k, v, causal=True, chunk_size=chunk_size)
    torch.testing.assert_close(out, linear_reference(q, k, v, causal_mask(n, m)))


def test_linear_attention_is_not_softmax_attention():
    q, k, v = qkv(64, 64)
    assert (linear_attention(q, k, v) - sdpa(q, k, v)).abs().max() > 0.01
    with pytest.raises(ValueError, match="chunk_size must be > 0"):
        linear_attention(q, k, v, causal=True, chunk_size=0)


# --- KV cache ----------------------------------------------------------------------------


def test_kv_cache_decoding_equals_full_causal_attention():
    q, k, v = qkv(10, 10, lead=(1, 2))
    cache = KVCache(max_len=16)
    outputs = []
    prompt = 4
    keys, values = cache.update(k[..., :prompt, :], v[..., :prompt, :])
    outputs.append(flash_attention(q[..., :prompt, :], keys, values, causal=True))
    for t in range(prompt, 10):  # one new token at a time: N = 1 < M
        keys, values = cache.update(k[..., t : t + 1, :], v[..., t : t + 1, :])
        outputs.append(flash_attention(q[..., t : t + 1, :], keys, values, causal=True))
    assert cache.length == 10 and keys.shape == (1, 2, 10, 16)
    torch.testing.assert_close(
        torch.cat(outputs, dim=-2), sdpa(q, k, v, causal_mask(10)), atol=1e-6, rtol=0
    )
    assert cache.nbytes == 2 * 16 * 2 * (16 + 8) * 4 // 2  # heads * max_len * (d + d_v) * 4
    cache.reset()
    assert cache.length == 0 and cache.update(k[..., :1, :], v[..., :1, :])[0].shape[-2] == 1


def test_kv_cache_rejects_overflow_and_mismatches():
    _, k, v = qkv(4, 4)
    cache = KVCache(max_len=5)
    assert cache.nbytes == 0
    cache.update(k, v)
    with pytest.raises(ValueError, match="holds max_len=5 positions; 4 are cached and 2 more"):
        cache.update(k[..., :2, :], v[..., :2, :])
    with pytest.raises(ValueError, match="like the cached keys"):
        cache.update(k[:1, ..., :1, :], v[:1, ..., :1, :])
    with pytest.raises(ValueError, match="v must be"):
        cache.update(k[..., :1, :], v[..., :2, :])
    with pytest.raises(ValueError, match="max_len must be > 0"):
        KVCache(0)


# --- ring attention ----------------------------------------------------------------------


def test_ring_attention_over_two_processes_is_exact():
    q, k, v = qkv(12, 12, d=8, d_v=4, lead=(1, 2))
    result = run_ring_attention(q, k, v, world_size=2, causal=True)
    torch.testing.assert_close(result.output, sdpa(q, k, v, causal_mask(12)), atol=1e-6, rtol=0)
    block = 2 * 6 * (8 + 4) * 4  # heads * positions per rank * (d + d_v) * 4 bytes
    assert result.world_size == 2 and result.bytes_sent_per_rank == block  # P - 1 steps


def test_ring_attention_needs_a_process_group_and_even_splits():
    q, k, v = qkv(6, 6)
    with pytest.raises(RuntimeError, match="initialised torch.distributed process group"):
        ring_attention(q, k, v)
    with pytest.raises(ValueError, match="divisible by world_size=4"):
        run_ring_attention(q, k, v, world_size=4)
    with pytest.raises(ValueError, match="world_size must be > 0"):
        run_ring_attention(q, k, v, world_size=0)
