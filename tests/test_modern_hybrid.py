"""``modern.hybrid``: local/global patterns, their cache and the windowed attention layer."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from attention_book import modern
from attention_book.attention import causal_mask
from attention_book.efficient import KVCache, sparse_attention_mask
from attention_book.models.decoder import DecoderLM, GroupedQueryAttention
from attention_book.positions import apply_rotary, rotary_embedding


def layer_mask(window, n):
    """The dense (n, n) mask of one layer: a causal window, or causal for a global layer."""
    return causal_mask(n) if window is None else sparse_attention_mask(n, window)


# --- layer_windows -----------------------------------------------------------------------


def test_layer_windows_of_the_papers():
    assert modern.layer_windows(4, 8, 2) == [8, None, 8, None]  # Gemma 2: local first
    gemma3 = modern.layer_windows(62, 1024, 6)
    assert [i for i, w in enumerate(gemma3) if w is None] == list(range(5, 62, 6))
    assert modern.layer_windows(3, 8) == [8, 8, 8]  # Mistral: no global layer
    assert modern.layer_windows(3, 8, 1) == [None, None, None]


@given(st.integers(1, 40), st.integers(1, 64), st.none() | st.integers(1, 12))
@settings(max_examples=60, deadline=None)
def test_layer_windows_counts(num_layers, window, every):
    windows = modern.layer_windows(num_layers, window, every)
    globals_ = [i for i, w in enumerate(windows) if w is None]
    assert len(windows) == num_layers
    assert len(globals_) == (0 if every is None else num_layers // every)
    assert all((i + 1) % every == 0 for i in globals_)
    assert all(w == window for w in windows if w is not None)


# --- hybrid_cache_bytes against the masks --------------------------------------------------


@given(
    st.integers(1, 9),
    st.integers(1, 3),
    st.integers(1, 8),
    st.integers(1, 40),
    st.integers(1, 50),
    st.none() | st.integers(1, 4),
    st.integers(1, 3),
    st.sampled_from([torch.float32, torch.float16, torch.float64]),
)
@settings(max_examples=60, deadline=None)
def test_cache_bytes_counts_what_the_last_query_can_see(
    num_layers, heads, head_dim, length, window, every, batch, dtype
):
    # a later query can only ever need the keys the last query's row of its layer's mask allows
    windows = modern.layer_windows(num_layers, window, every)
    kept = sum(int(layer_mask(w, length)[-1].sum()) for w in windows)
    want = 2 * heads * head_dim * kept * batch * dtype.itemsize
    got = modern.hybrid_cache_bytes(
        num_layers, heads, head_dim, length, window, every, batch, dtype
    )
    assert got == want


def test_cache_bytes_of_mistral_and_gemma():
    full = modern.hybrid_cache_bytes(32, 8, 128, 32768, 4096, 1, dtype=torch.float16)
    window = modern.hybrid_cache_bytes(32, 8, 128, 32768, 4096, None, dtype=torch.float16)
    assert full == 8 * window == 4 * 2**30  # Mistral 7B at 32K: 8x smaller, 4 GiB against 0.5
    gemma2 = modern.hybrid_cache_bytes(42, 8, 256, 8192, 4096, 2)
    assert gemma2 * 4 == modern.hybrid_cache_bytes(42, 8, 256, 8192, 4096, 1) * 3


# --- receptive_field against powers of the masks -----------------------------------------


@given(
    st.lists(st.none() | st.integers(1, 6), min_size=1, max_size=5),
    st.integers(2, 40),
)
@settings(max_examples=40, deadline=None)
def test_receptive_field_equals_the_reach_of_the_mask_product(windows, n):
    reach = torch.eye(n)
    for w in windows:  # row i: which input positions reach position i after these layers
        reach = (layer_mask(w, n).float() @ reach).clamp(max=1)
    farthest = n - 1 - int(reach[-1].nonzero().min())
    field = modern.receptive_field(windows)
    assert farthest == min(field, n - 1)
    if field == math.inf:
        assert farthest == n - 1


# --- WindowedAttention against a plain masked softmax --------------------------------------


def reference_attention(attn, x, window):
    """Dense attention with the layer's own weights, written out with a masked softmax."""
    b, n, _ = x.shape
    h, hk, dh = attn.num_heads, attn.num_kv_heads, attn.d_head
    q = attn.q_proj(x).view(b, n, h, dh).transpose(1, 2)
    k = attn.k_proj(x).view(b, n, hk, dh).transpose(1, 2)
    v = attn.v_proj(x).view(b, n, hk, dh).transpose(1, 2)
    cos, sin = rotary_embedding(n, dh)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    k, v = k.repeat_interleave(h // hk, dim=1), v.repeat_interleave(h // hk, dim=1)
    gap = torch.arange(n)[:, None] - torch.arange(n)[None, :]  # query minus key position
    allowed = (gap >= 0) & (gap < (n if window is None else window))
    scores = (q @ k.transpose(-2, -1) / math.sqrt(dh)).masked_fill(~allowed, -math.inf)
    out = torch.softmax(scores, dim=-1) @ v  # (B, H, N, dh)
    return attn.out_proj(out.transpose(1, 2).reshape(b, n, h * dh))


@given(
    st.sampled_from([(8, 2, 1), (8, 2, 2), (24, 4, 2), (16, 4, 1)]),
    st.integers(1, 30),
    st.none() | st.integers(1, 12),
    st.integers(0, 2**16),
)
@settings(max_examples=25, deadline=None)
def test_windowed_attention_equals_masked_softmax(shape, n, window, seed):
    d_model, heads, kv_heads = shape
    torch.manual_seed(seed)
    attn = modern.WindowedAttention(d_model, heads, kv_heads, window=window).double()
    x = torch.randn(2, n, d_model, dtype=torch.float64)
    rotary = tuple(t.double() for t in rotary_embedding(n, attn.d_head))
    want = reference_attention(attn, x, window)
    trained = attn(x.requires_grad_(), rotary)  # the training path: a dense mask
    trained.sum().backward()
    with torch.no_grad():
        served = attn(x, rotary)  # the inference path: blockwise
    torch.testing.assert_close(trained, want, atol=1e-10, rtol=0)
    torch.testing.assert_close(served, want, atol=1e-10, rtol=0)
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_long_inputs_take_the_blockwise_window():
    torch.manual_seed(3)
    attn = modern.WindowedAttention(8, 2, 1, window=20).double()
    x = torch.randn(1, 300, 8, dtype=torch.float64)  # 90,000 scores per head: blockwise
    rotary = tuple(t.double() for t in rotary_embedding(300, 4))
    with torch.no_grad():
        torch.testing.assert_close(attn(x, rotary), reference_attention(attn, x, 20))


def test_global_layer_is_grouped_query_attention():
    torch.manual_seed(0)
    attn = modern.WindowedAttention(16, 4, 2, window=None)
    plain = GroupedQueryAttention(16, 4, 2)
    plain.load_state_dict(attn.state_dict())
    x = torch.randn(2, 9, 16)
    rotary = rotary_embedding(9, 4)
    torch.testing.assert_close(attn(x, rotary), plain(x, rotary))
    assert type(attn.new_cache(9)) is KVCache
    assert type(modern.WindowedAttention(16, 4, window=3).new_cache(9)) is modern.RollingKVCache


# --- the rolling cache ---------------------------------------------------------------------


@given(
    st.integers(1, 6),
    st.lists(st.integers(1, 9), min_size=1, max_size=6),
    st.none() | st.integers(1, 60),
)
@settings(max_examples=60, deadline=None)
def test_rolling_cache_returns_the_window_before_the_new_positions(window, chunks, limit):
    total = sum(chunks)
    limit = None if limit is None else max(limit, total)
    rolling, full = modern.RollingKVCache(window, limit), KVCache(total)
    g = torch.Generator().manual_seed(window + total)
    for n in chunks:
        k, v = torch.randn(2, 3, n, 4, generator=g), torch.randn(2, 3, n, 5, generator=g)
        keys, values = rolling.update(k, v)
        all_keys, all_values = full.update(k, v)
        start = max(full.length - n - (window - 1), 0)  # the window of the first new query
        torch.testing.assert_close(keys, all_keys[..., start:, :], rtol=0, atol=0)
        torch.testing.assert_close(values, all_values[..., start:, :], rtol=0, atol=0)
    assert rolling.length == total and rolling.held == min(total, window, limit or total)
    slots = window if limit is None else min(window, limit)
    assert rolling.nbytes == 2 * 3 * slots * (4 + 5) * 4


def hybrid_lm(windows, seed=0):
    torch.manual_seed(seed)
    return DecoderLM(
        40,
        d_model=16,
        num_heads=4,
        num_kv_heads=2,
        num_layers=len(windows),
        d_ff=32,
        max_len=48,
        attention=lambda i: modern.WindowedAttention(16, 4, 2, window=windows[i]),
    ).eval()


@given(
    st.integers(1, 7),
    st.none() | st.integers(1, 3),
    st.lists(st.integers(1, 12), min_size=1, max_size=5),
)
@settings(max_examples=15, deadline=None)
def test_cached_forward_equals_full_forward(window, every, chunks):
    lm = hybrid_lm(modern.layer_windows(3, window, every))
    ids = torch.randint(3, 40, (2, sum(chunks)), generator=torch.Generator().manual_seed(1))
    caches, parts, start = lm.new_caches(), [], 0
    with torch.no_grad():
        for n in chunks:
            parts.append(lm(ids[:, start : start + n], caches))
            start += n
        full = lm(ids)
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("every", [None, 2, 1])
def test_cached_generation_equals_uncached_and_cache_matches_formula(every):
    lm = hybrid_lm(modern.layer_windows(4, 5, every))
    prompt = torch.randint(3, 40, (2, 6), generator=torch.Generator().manual_seed(2))
    assert torch.equal(lm.generate(prompt, 40), lm.generate(prompt, 40, use_cache=False))
    caches = lm.new_caches(max_len=30)
    with torch.no_grad():
        lm(torch.randint(3, 40, (2, 30)), caches)
    measured = sum(c.nbytes for c in caches)
    assert measured == modern.hybrid_cache_bytes(4, 2, 4, 30, 5, every, batch_size=2)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: modern.layer_windows(4, 0, 2), ValueError, "window must be > 0, got 0"),
        (lambda: modern.layer_windows(4, 8, 0), ValueError, "global_every must be > 0, got 0"),
        (lambda: modern.layer_windows(0, 8, 2), ValueError, "num_layers must be > 0, got 0"),
        (lambda: modern.layer_windows(4, 2.5), TypeError, "window must be an int, got float"),
        (
            lambda: modern.hybrid_cache_bytes(4, 2, 8, 0, 8, 2),
            ValueError,
            "length must be > 0, got 0",
        ),
        (
            lambda: modern.hybrid_cache_bytes(4, 2, 8, 10, -1, 2),
            ValueError,
            "window must be > 0, got -1",
        ),
        (
            lambda: modern.hybrid_cache_bytes(4, 2, 8, 10, 8, -2),
            ValueError,
            "global_every must be > 0, got -2",
        ),
        (
            lambda: modern.hybrid_cache_bytes(4, 0, 8, 10, 8, 2),
            ValueError,
            "num_kv_heads must be > 0, got 0",
        ),
        (lambda: modern.receptive_field([]), TypeError, "windows must be a non-empty sequence"),
        (lambda: modern.receptive_field([3, 0]), ValueError, r"windows\[1\] must be > 0, got 0"),
        (lambda: modern.RollingKVCache(0), ValueError, "window must be > 0, got 0"),
        (lambda: modern.RollingKVCache(4, 0), ValueError, "max_len must be > 0, got 0"),
        (
            lambda: modern.WindowedAttention(16, 4, window=0),
            ValueError,
            "window must be > 0, got 0",
        ),
    ],
)
def test_bad_arguments_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_rolling_cache_rejects_bad_updates():
    cache = modern.RollingKVCache(4, max_len=6)
    cache.update(torch.zeros(1, 2, 5, 3), torch.zeros(1, 2, 5, 3))
    with pytest.raises(ValueError, match=r"max_len=6 positions; 5 are cached and 2 more"):
        cache.update(torch.zeros(1, 2, 2, 3), torch.zeros(1, 2, 2, 3))
    with pytest.raises(ValueError, match=r"k must be \(\.\.\., n_new, d\) = \(1, 2, 1, 3\)"):
        cache.update(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4))
    with pytest.raises(ValueError, match=r"v must be \(\.\.\., n_new, d_v\) with k's leading"):
        cache.update(torch.zeros(1, 2, 1, 3), torch.zeros(1, 3, 1, 3))
    with pytest.raises(TypeError, match="k must be a torch.Tensor, got list"):
        cache.update([0.0], torch.zeros(1, 2, 1, 3))
