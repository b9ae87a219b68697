"""``modern.mla``: multi-head latent attention against the paper's equations, one head at a time."""

import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from attention_book import efficient
from attention_book.models.decoder import DecoderLM
from attention_book.modern import LatentKVCache, MultiHeadLatentAttention, latent_cache_bytes
from attention_book.positions import rotary_embedding


def rope_rotate(x, position, base=10000.0):
    """RoPE by hand: rotate the pairs (2i, 2i + 1) of the vector x by position * base^(-2i/d)."""
    d = x.shape[-1]
    out = x.clone()
    for i in range(d // 2):
        angle = position * base ** (-2 * i / d)
        c, s = math.cos(angle), math.sin(angle)
        out[..., 2 * i] = x[..., 2 * i] * c - x[..., 2 * i + 1] * s
        out[..., 2 * i + 1] = x[..., 2 * i] * s + x[..., 2 * i + 1] * c
    return out


def reference(mla, x):
    """DeepSeek-V2's equations (9)-(11) and (14)-(19), without query compression, written out
    one position and one head at a time: the plain form the module must match."""
    n = x.shape[1]
    h, dh, dr = mla.num_heads, mla.d_head, mla.d_rope
    out = torch.zeros_like(x)
    for t in range(n):
        heads = []
        for i in range(h):
            rows = slice(i * dh, (i + 1) * dh)
            q_c = x[:, t] @ mla.q_proj.weight[rows].T + mla.q_proj.bias[rows]  # (B, dh)
            rope_rows = slice(i * dr, (i + 1) * dr)
            q_r = x[:, t] @ mla.q_rope_proj.weight[rope_rows].T + mla.q_rope_proj.bias[rope_rows]
            q = torch.cat([q_c, rope_rotate(q_r, t)], -1)  # (B, dh + dr)
            scores, values = [], []
            for j in range(t + 1):  # causal: positions 0 .. t
                c = mla.kv_down(x[:, j])  # (B, d_latent): c_KV, eq. (9)
                k_c = c @ mla.k_up.weight[rows].T  # eq. (10), head i
                k_r = rope_rotate(mla.k_rope_proj(x[:, j]), j)  # eq. (15), shared by heads
                k = torch.cat([k_c, k_r], -1)  # eq. (17)
                scores.append((q * k).sum(-1) / math.sqrt(dh + dr))  # eq. (18)
                values.append(c @ mla.v_up.weight[rows].T)  # eq. (11), head i
            weights = torch.softmax(torch.stack(scores, -1), -1)  # (B, t + 1)
            heads.append((weights[..., None] * torch.stack(values, 1)).sum(1))  # (B, dh)
        out[:, t] = mla.out_proj(torch.cat(heads, -1))  # eq. (19)
    return out


def rotary(n, d_rope, start=0, dtype=torch.float64):
    cos, sin = rotary_embedding(start + n, d_rope, dtype=dtype)
    return cos[start:], sin[start:]


def make(d_model=12, num_heads=3, d_latent=5, d_rope=2, seed=0, absorb=False):
    torch.manual_seed(seed)
    return MultiHeadLatentAttention(d_model, num_heads, d_latent, d_rope, absorb).double()


def inputs(b, n, d, seed):
    return torch.randn(b, n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- against the plain form --------------------------------------------------------------


@pytest.mark.parametrize("absorb", [False, True])
def test_matches_the_papers_equations(absorb):
    mla = make(absorb=absorb)
    x = inputs(2, 6, 12, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(mla(x, rotary(6, 2)), reference(mla, x), atol=1e-10, rtol=0)


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(1, 3),
    n=st.integers(1, 6),
    num_heads=st.integers(1, 4),
    d_head=st.integers(1, 5),
    d_latent=st.integers(1, 9),
    half_rope=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_property_absorbed_expanded_and_reference_agree(
    b, n, num_heads, d_head, d_latent, half_rope, seed
):
    d_model, d_rope = num_heads * d_head, 2 * half_rope
    mla = make(d_model, num_heads, d_latent, d_rope, seed=seed)
    x = inputs(b, n, d_model, seed)
    with torch.no_grad():
        expanded = mla(x, rotary(n, d_rope))
        mla.absorb = True
        absorbed = mla(x, rotary(n, d_rope))
        torch.testing.assert_close(expanded, reference(mla, x), atol=1e-10, rtol=0)
    torch.testing.assert_close(absorbed, expanded, atol=1e-10, rtol=0)


@settings(max_examples=20, deadline=None)
@given(
    prefix=st.integers(1, 6),
    chunks=st.lists(st.integers(1, 3), min_size=1, max_size=4),
    absorb=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_cached_chunks_equal_one_pass(prefix, chunks, absorb, seed):
    mla = make(absorb=absorb, seed=seed)
    n = prefix + sum(chunks)
    x = inputs(2, n, 12, seed)
    cache = mla.new_cache(n)
    with torch.no_grad():
        full = mla(x, rotary(n, 2))
        parts, start = [], 0
        for size in [prefix, *chunks]:
            parts.append(mla(x[:, start : start + size], rotary(size, 2, start), cache))
            start += size
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-10, rtol=0)
    assert cache.length == n
    assert cache.latent.shape == (2, n, 5) and cache.rope_key.shape == (2, n, 2)


def test_float32_absorbed_and_expanded_agree_to_1e5():
    torch.manual_seed(3)
    mla = MultiHeadLatentAttention(64, 8, 32, 4)
    x = torch.randn(4, 20, 64)
    cos, sin = rotary_embedding(20, 4)
    with torch.no_grad():
        expanded = mla(x, (cos, sin))
        mla.absorb = True
        assert (mla(x, (cos, sin)) - expanded).abs().max() < 1e-5


def test_the_cache_holds_the_latent_and_the_rotary_key():
    mla = make()
    x = inputs(1, 4, 12, seed=2)
    cache = mla.new_cache(8)
    assert isinstance(cache, LatentKVCache) and isinstance(cache, efficient.KVCache)
    assert cache.latent is None and cache.rope_key is None and cache.nbytes == 0
    with torch.no_grad():
        mla(x, rotary(4, 2), cache)
    torch.testing.assert_close(cache.latent, mla.kv_down(x).detach())
    k_rope = torch.stack([rope_rotate(mla.k_rope_proj(x[:, j]), j) for j in range(4)], 1)
    torch.testing.assert_close(cache.rope_key, k_rope.detach())
    assert cache.nbytes == latent_cache_bytes(1, 5, 2, 8, dtype=torch.float64)


def test_absorbed_weights_fold_the_up_projections():
    mla = make()
    query_weight, query_bias, output_weight = mla.absorbed_weights()
    assert query_weight.shape == (3, 5, 12) and query_bias.shape == (3, 5)
    assert output_weight.shape == (3, 12, 5)
    x, c = inputs(1, 1, 12, seed=4)[0, 0], inputs(1, 1, 5, seed=5)[0, 0]
    for i in range(3):  # head i's content score and output, expanded and folded
        rows = slice(4 * i, 4 * i + 4)
        q_c = mla.q_proj(x)[rows]
        k_c = mla.k_up(c)[rows]
        torch.testing.assert_close((query_weight[i] @ x + query_bias[i]) @ c, q_c @ k_c)
        o = mla.v_up(c)[rows]
        torch.testing.assert_close(output_weight[i] @ c, mla.out_proj.weight[:, rows] @ o)


def test_gradients_flow_in_both_forms():
    for absorb in (False, True):
        mla = make(absorb=absorb)
        mla(inputs(2, 5, 12, seed=6), rotary(5, 2)).sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mla.parameters())


# --- in the decoder ----------------------------------------------------------------------


@pytest.mark.parametrize("absorb", [False, True])
def test_decoder_generates_the_same_tokens_with_and_without_the_cache(absorb):
    torch.manual_seed(0)
    lm = DecoderLM(
        64,
        d_model=16,
        num_heads=4,
        num_layers=2,
        max_len=32,
        attention=lambda i: MultiHeadLatentAttention(16, 4, 6, 2, absorb=absorb),
    ).eval()
    assert lm.rotary_dim == 2 and lm.rotary_cos.shape == (32, 1)
    prompt = torch.randint(3, 64, (2, 5), generator=torch.Generator().manual_seed(1))
    cached = lm.generate(prompt, 12)
    assert torch.equal(cached, lm.generate(prompt, 12, use_cache=False))
    caches = lm.new_caches(17)
    assert all(isinstance(c, LatentKVCache) for c in caches)
    with torch.no_grad():
        lm(cached, caches)
    assert sum(c.nbytes for c in caches) == latent_cache_bytes(2, 6, 2, 17, batch_size=2)


# --- cache bytes -------------------------------------------------------------------------


def test_latent_cache_bytes_follows_the_formula():
    assert latent_cache_bytes(1, 16, 2, 1) == 18 * 4
    assert latent_cache_bytes(3, 16, 4, 10, 2, torch.float16) == 3 * 20 * 10 * 2 * 2
    # DeepSeek-V2: 60 layers, d_c = 512 = 4 d_h, d_h^R = 64 = d_h / 2, 128 heads of 128
    mla = latent_cache_bytes(60, 512, 64, 1)
    mha = efficient.kv_cache_bytes(60, 128, 128, 1)
    assert mla * 2 * 128 == mha * 4.5  # (d_c + d_h^R) l = 9/2 d_h l against 2 n_h d_h l
    assert mla == efficient.kv_cache_bytes(60, 1, 128, 1) * 2.25  # "GQA with 2.25 groups"


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0, 16, 2, 1), ValueError, "num_layers must be > 0, got 0"),
        ((1, 0, 2, 1), ValueError, "d_latent must be > 0, got 0"),
        ((1, 16, 3, 1), ValueError, "d_rope must be even"),
        ((1, 16, 0, 1), ValueError, "d_rope must be > 0, got 0"),
        ((1, 16, 2, 0), ValueError, "length must be > 0, got 0"),
        ((1, 16, 2, 1, 0), ValueError, "batch_size must be > 0, got 0"),
        ((1, 16, 2, 1, 1, "float32"), TypeError, "dtype must be a torch.dtype, got str"),
        ((1, 16.0, 2, 1), TypeError, "d_latent must be an int, got float"),
    ],
)
def test_latent_cache_bytes_rejects_bad_arguments(args, error, message):
    with pytest.raises(error, match=message):
        latent_cache_bytes(*args)


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"d_latent": 0}, ValueError, r"d_latent must be > 0, got 0"),
        ({"d_latent": -4}, ValueError, r"d_latent must be > 0, got -4"),
        ({"d_rope": 3}, ValueError, r"d_rope must be even \(rotary .*\), got 3"),
        ({"d_rope": 0}, ValueError, r"d_rope must be > 0, got 0"),
        ({"d_rope": -2}, ValueError, r"d_rope must be > 0, got -2"),
        ({"d_rope": 2.0}, TypeError, r"d_rope must be an int, got float"),
        ({"d_model": 10}, ValueError, r"d_model must be divisible by num_heads, got d_model=10, "),
        ({"num_heads": 0}, ValueError, r"num_heads must be > 0, got 0"),
        ({"absorb": 1}, TypeError, r"absorb must be a bool, got int"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error, message):
    args = {"d_model": 12, "num_heads": 3, "d_latent": 5, "d_rope": 2} | kwargs
    with pytest.raises(error, match=message):
        MultiHeadLatentAttention(**args)


def test_bad_inputs_are_rejected():
    mla = make()
    with pytest.raises(ValueError, match=r"x must be \(B, N, d_model=12\), got \(2, 4, 8\)"):
        mla(inputs(2, 4, 8, seed=0), rotary(4, 2))
    with pytest.raises(ValueError, match="at least 3 dimension"):
        mla(inputs(2, 4, 12, seed=0)[0], rotary(4, 2))
    with pytest.raises(ValueError, match="cos must broadcast to"):
        mla(inputs(2, 4, 12, seed=0), rotary(4, 4))  # tables for d_rope = 4, not 2
    cache = mla.new_cache(3)
    with pytest.raises(ValueError, match="the cache holds max_len=3 positions"):
        mla(inputs(1, 4, 12, seed=0), rotary(4, 2), cache)
