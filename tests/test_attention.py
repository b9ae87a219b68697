import math

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from torch import nn

from attention_book.attention import (
    AdditiveAttention,
    BilinearAttention,
    MultiHeadAttention,
    causal_mask,
    dot_product_scores,
    padding_mask,
    scaled_dot_product_attention,
    softmax,
)


def rand(*shape, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=dtype)


# --- softmax -----------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_matches_torch(dim):
    x = rand(4, 5, 6)
    torch.testing.assert_close(softmax(x, dim=dim), torch.softmax(x, dim=dim))


def test_softmax_temperature_divides_scores():
    x = rand(3, 7)
    torch.testing.assert_close(softmax(x, temperature=0.5), torch.softmax(x / 0.5, dim=-1))


def test_softmax_is_stable_for_huge_scores():
    x = torch.tensor([1000.0, 1001.0, 999.0])
    out = softmax(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.softmax(x - 1000.0, dim=-1))


def test_softmax_is_the_plain_formula_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(4, 7, 9, generator=g) * 8
    top = scores.amax(-1, keepdim=True)
    e = (scores - top).exp()
    assert torch.equal(softmax(scores), e / e.sum(-1, keepdim=True))
    assert torch.equal(softmax(scores, temperature=2.0), softmax(scores / 2.0))


def test_softmax_keeps_nan():
    assert torch.isnan(softmax(torch.tensor([0.0, math.nan]))).all()


def test_softmax_keeps_dtype():
    assert softmax(rand(3, dtype=torch.float32)).dtype == torch.float32


@given(
    st.lists(st.floats(-1e4, 1e4), min_size=1, max_size=20),
    st.floats(-1e3, 1e3),
    st.floats(0.05, 20.0),
)
@settings(max_examples=80, deadline=None)
def test_softmax_properties(values, shift, temperature):
    x = torch.tensor(values, dtype=torch.float64)
    w = softmax(x, temperature=temperature)
    assert (w >= 0).all()
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-9)
    torch.testing.assert_close(softmax(x + shift, temperature=temperature), w)  # shift invariant


@pytest.mark.parametrize("temperature", [0, -1.0, float("inf"), float("nan")])
def test_softmax_rejects_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        softmax(rand(3), temperature=temperature)


def test_softmax_rejects_bad_input():
    with pytest.raises(TypeError, match="scores must be a torch.Tensor, got list"):
        softmax([1.0, 2.0])
    with pytest.raises(TypeError, match="scores must have a floating-point dtype"):
        softmax(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"dim=2 is out of range for a tensor with 2"):
        softmax(rand(2, 3), dim=2)


# --- scaled dot-product attention --------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 4), (2, 5, 4), (2, 3, 5, 4)])
def test_sdpa_matches_pytorch(shape):
    q, k, v = rand(*shape), rand(*shape[:-2], 7, shape[-1]), rand(*shape[:-2], 7, 3)
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    assert weights.shape == (*shape[:-1], 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(shape[:-1], dtype=torch.float64))


def test_sdpa_scale_is_inverse_temperature():
    q, k, v = rand(3, 4), rand(6, 4), rand(6, 2)
    out, weights = scaled_dot_product_attention(q, k, v, scale=1 / 0.3)
    torch.testing.assert_close(weights, torch.softmax(q @ k.T / 0.3, dim=-1))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, scale=1 / 0.3))


def test_sdpa_gradients_match_pytorch():
    q, k, v = (rand(2, 5, 4).requires_grad_() for _ in range(3))
    ours = torch.autograd.grad(scaled_dot_product_attention(q, k, v)[0].sum(), (q, k, v))
    theirs = torch.autograd.grad(F.scaled_dot_product_attention(q, k, v).sum(), (q, k, v))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


@given(st.permutations(range(6)))
@settings(max_examples=30, deadline=None)
def test_sdpa_is_invariant_to_the_order_of_key_value_pairs(perm):
    q, k, v = rand(3, 4), rand(6, 4), rand(6, 2)
    out, weights = scaled_dot_product_attention(q, k, v)
    out_p, weights_p = scaled_dot_product_attention(q, k[list(perm)], v[list(perm)])
    torch.testing.assert_close(out_p, out)
    torch.testing.assert_close(weights_p, weights[:, list(perm)])


@pytest.mark.parametrize(
    ("q", "k", "v", "error", "message"),
    [
        ((4,), (6, 4), (6, 2), ValueError, r"queries must have at least 2 dimension\(s\), got"),
        ((3, 4), (6, 5), (6, 2), ValueError, r"feature size d=4 of queries \(3, 4\), got \(6, 5\)"),
        ((3, 4), (6, 4), (5, 2), ValueError, r"values must be .* matching keys \(6, 4\).*\(5, 2\)"),
        ((2, 3, 4), (3, 6, 4), (3, 6, 2), ValueError, r"leading dims of queries \(2, 3, 4\)"),
        ((3, 4), (1, 6, 4), (1, 6, 2), ValueError, r"keys must be \(\.\.\., M, d\)"),
    ],
)
def test_sdpa_names_bad_shapes(q, k, v, error, message):
    with pytest.raises(error, match=message):
        scaled_dot_product_attention(rand(*q), rand(*k), rand(*v))


def test_sdpa_rejects_mixed_dtypes_and_bad_scale():
    q, k, v = rand(3, 4), rand(6, 4), rand(6, 2)
    with pytest.raises(TypeError, match="share one dtype"):
        scaled_dot_product_attention(q, k.float(), v)
    with pytest.raises(ValueError, match="scale must be a finite number > 0, got -1"):
        scaled_dot_product_attention(q, k, v, scale=-1)
    with pytest.raises(TypeError, match="values must be a torch.Tensor, got ndarray"):
        scaled_dot_product_attention(q, k, v.numpy())


# --- masks -------------------------------------------------------------------------------


@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    n=st.integers(1, 6),
    m=st.integers(1, 6),
    d=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    mask_kind=st.sampled_from(["none", "random", "broadcast"]),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_sdpa_matches_pytorch_over_random_shapes_and_masks(batch, n, m, d, seed, mask_kind):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, n, d, generator=g, dtype=torch.float64)
    k = torch.randn(*batch, m, d, generator=g, dtype=torch.float64)
    v = torch.randn(*batch, m, 3, generator=g, dtype=torch.float64)
    mask = None
    if mask_kind == "random":
        mask = torch.rand(*batch, n, m, generator=g) < 0.7
        mask[..., 0] = True  # PyTorch gives NaN for a row with no allowed key; ours gives 0
    elif mask_kind == "broadcast":
        mask = torch.rand(1, m, generator=g) < 0.7
        mask[..., 0] = True
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    if mask is not None:
        assert (weights[~mask.expand_as(weights)] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(*batch, n, dtype=torch.float64))


def test_query_with_no_allowed_key_gets_zero_weights_and_output_not_nan():
    q, k, v = (rand(3, 4).requires_grad_() for _ in range(3))
    mask = torch.tensor([[True, False, True], [False, False, False], [True, True, True]])
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert torch.equal(weights[1], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(out[1], torch.zeros(4, dtype=torch.float64))
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_masked_gradients_match_pytorch():
    q, k, v = (rand(2, 5, 4).requires_grad_() for _ in range(3))
    mask = causal_mask(5)
    ours = torch.autograd.grad(scaled_dot_product_attention(q, k, v, mask)[0].sum(), (q, k, v))
    theirs = torch.autograd.grad(
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum(), (q, k, v)
    )
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_softmax_mask_zeroes_and_renormalises():
    x = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[True, False, True], [False, False, False]])
    w = softmax(x, mask=mask)
    torch.testing.assert_close(w[0], torch.softmax(torch.tensor([1.0, -math.inf, 3.0]), -1))
    assert torch.equal(w[1], torch.zeros(3))


@pytest.mark.parametrize(
    ("mask", "error", "message"),
    [
        (torch.ones(3, 6), TypeError, "mask must have dtype torch.bool"),
        ([[True]], TypeError, "mask must be a boolean torch.Tensor, got list"),
        (
            torch.ones(3, 5, dtype=torch.bool),
            ValueError,
            r"mask of shape \(3, 5\) does not broadcast to the scores shape \(3, 6\)",
        ),
        (torch.ones(2, 3, 6, dtype=torch.bool), ValueError, r"mask of shape \(2, 3, 6\)"),
    ],
)
def test_sdpa_rejects_bad_masks(mask, error, message):
    with pytest.raises(error, match=message):
        scaled_dot_product_attention(rand(3, 4), rand(6, 4), rand(6, 2), mask=mask)


def test_causal_mask():
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]]).bool())
    # two new queries after a cache of three keys: they sit at positions 3 and 4
    assert torch.equal(causal_mask(2, 5), torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]).bool())
    assert causal_mask(4).dtype == torch.bool


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0,), ValueError, "n must be > 0, got 0"),
        ((3, 2), ValueError, "m must be >= n"),
        ((2.0,), TypeError, "n must be an int, got float"),
    ],
)
def test_causal_mask_rejects_bad_sizes(args, error, message):
    with pytest.raises(error, match=message):
        causal_mask(*args)


def test_padding_mask():
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]]).bool()
    assert torch.equal(padding_mask(torch.tensor([2, 4, 0]), 4), expected)
    assert torch.equal(padding_mask([2, 4, 0], 4), expected)


@pytest.mark.parametrize(
    ("lengths", "max_len", "error", "message"),
    [
        ([1, 5], 4, ValueError, r"lengths must lie in \[0, max_len=4\], got \[1, 5\]"),
        ([-1], 4, ValueError, r"lengths must lie in \[0, max_len=4\]"),
        (torch.tensor([1.5]), 4, ValueError, "lengths must be a 1-D integer tensor"),
        (torch.tensor([[1]]), 4, ValueError, r"of shape \(1, 1\)"),
        ([1], 0, ValueError, "max_len must be > 0"),
        ("12", 4, TypeError, "lengths must be a tensor or a list of ints, got str"),
    ],
)
def test_padding_mask_rejects_bad_input(lengths, max_len, error, message):
    with pytest.raises(error, match=message):
        padding_mask(lengths, max_len)


# --- score functions ---------------------------------------------------------------------


def test_dot_product_scores_default_and_scaled():
    q, k = rand(2, 3, 4), rand(2, 5, 4)
    torch.testing.assert_close(dot_product_scores(q, k), q @ k.transpose(-1, -2))
    torch.testing.assert_close(dot_product_scores(q, k, scale=None), q @ k.transpose(-1, -2) / 2)


def test_additive_attention_matches_its_formula():
    torch.manual_seed(0)
    attn = AdditiveAttention(query_dim=3, key_dim=5, hidden_dim=7).double()
    q, k, v = rand(2, 4, 3), rand(2, 6, 5), rand(2, 6, 2)
    out, weights = attn(q, k, v)
    wq, wk, w = attn.query_proj.weight, attn.key_proj.weight, attn.score_proj.weight[0]
    expected = torch.empty(2, 4, 6, dtype=torch.float64)
    for b in range(2):
        for i in range(4):
            for j in range(6):
                expected[b, i, j] = w @ torch.tanh(wq @ q[b, i] + wk @ k[b, j])
    torch.testing.assert_close(weights, torch.softmax(expected, -1))
    torch.testing.assert_close(out, weights @ v)


def test_bilinear_attention_matches_its_formula():
    torch.manual_seed(0)
    attn = BilinearAttention(query_dim=3, key_dim=5).double()
    q, k, v = rand(4, 3), rand(6, 5), rand(6, 2)
    out, weights = attn(q, k, v, mask=causal_mask(4, 6))
    scores = q @ attn.key_proj.weight @ k.T  # q^T W k with W of shape (3, 5)
    expected = torch.softmax(scores.masked_fill(~causal_mask(4, 6), -math.inf), -1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(out, expected @ v)


@pytest.mark.parametrize("cls", [AdditiveAttention, BilinearAttention])
def test_score_modules_name_bad_feature_sizes(cls):
    attn = cls(3, 5, 7) if cls is AdditiveAttention else cls(3, 5)
    with pytest.raises(ValueError, match=r"key must have 5 features, got shape \(6, 4\)"):
        attn(torch.randn(4, 3), torch.randn(6, 4), torch.randn(6, 2))
    with pytest.raises(ValueError, match=r"query must have 3 features"):
        attn(torch.randn(4, 2), torch.randn(6, 5), torch.randn(6, 2))
    with pytest.raises(ValueError, match="hidden_dim must be > 0|query_dim must be > 0"):
        AdditiveAttention(3, 5, 0) if cls is AdditiveAttention else cls(0, 5)


# --- multi-head attention ----------------------------------------------------------------


def torch_mha(d_model, heads, bias, seed=0):
    torch.manual_seed(seed)
    return nn.MultiheadAttention(d_model, heads, bias=bias, batch_first=True).double()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mask_kind", [None, "causal", "padding", "per-sequence"])
def test_multihead_matches_pytorch(bias, mask_kind):
    theirs = torch_mha(12, 3, bias)
    ours = MultiHeadAttention.from_torch(theirs)
    x, memory = rand(2, 5, 12), rand(2, 7, 12)
    key = x if mask_kind == "causal" else memory
    m = key.shape[1]
    mask = {
        None: None,
        "causal": causal_mask(5),
        "padding": padding_mask([7, 3], 7)[:, None, None, :],
        "per-sequence": torch.rand(2, 5, m, generator=torch.Generator().manual_seed(1)) < 0.8,
    }[mask_kind]
    if mask_kind == "per-sequence":
        mask[..., 0] = True
    out, weights = ours(x, key, key, mask=mask)
    torch_mask = None
    if mask is not None:  # nn.MultiheadAttention's boolean masks mean the opposite: True = blocked
        per_head = mask.unsqueeze(1) if mask.ndim == 3 else mask
        torch_mask = ~per_head.expand(2, 3, 5, m).reshape(2 * 3, 5, m)
    expected, expected_weights = theirs(
        x, key, key, attn_mask=torch_mask, need_weights=True, average_attn_weights=False
    )
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, expected_weights, atol=1e-5, rtol=1e-5)
    assert weights.shape == (2, 3, 5, m)


def test_multihead_parameter_count():
    assert sum(p.numel() for p in MultiHeadAttention(16, 4).parameters()) == 4 * (16 * 16 + 16)
    assert sum(p.numel() for p in MultiHeadAttention(16, 4, bias=False).parameters()) == 4 * 256


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (
            (10, 3),
            ValueError,
            "d_model must be divisible by num_heads, got d_model=10, num_heads=3",
        ),
        ((0, 1), ValueError, "d_model must be > 0"),
        ((8, -2), ValueError, "num_heads must be > 0"),
    ],
)
def test_multihead_rejects_bad_sizes(args, error, message):
    with pytest.raises(error, match=message):
        MultiHeadAttention(*args)


def test_multihead_rejects_bad_inputs():
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"query must be \(B, length, d_model=8\), got \(5, 8\)"):
        mha(torch.randn(5, 8), torch.randn(2, 5, 8), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"key must be \(B, length, d_model=8\), got \(2, 5, 6\)"):
        mha(torch.randn(2, 5, 8), torch.randn(2, 5, 6), torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="with the batch size of query"):
        mha(torch.randn(2, 5, 8), torch.randn(3, 5, 8), torch.randn(3, 5, 8))
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\) does not broadcast"):
        mha(
            torch.randn(2, 5, 8),
            torch.randn(2, 5, 8),
            torch.randn(2, 5, 8),
            mask=torch.ones(4, 4, dtype=torch.bool),
        )


def test_from_torch_rejects_what_it_cannot_copy():
    with pytest.raises(TypeError, match="module must be a torch.nn.MultiheadAttention, got Linear"):
        MultiHeadAttention.from_torch(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="kdim = vdim = embed_dim = 8, got kdim=4"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, kdim=4, vdim=4))
    with pytest.raises(ValueError, match="add_bias_kv or add_zero_attn"):
        MultiHeadAttention.from_torch(nn.MultiheadAttention(8, 2, add_bias_kv=True))


# --- an additive score bias and rotary positions (chapter 4) -----------------------------


def test_sdpa_bias_is_added_to_the_scaled_scores_like_pytorchs_float_mask():
    q, k, v = rand(2, 3, 4), rand(2, 6, 4), rand(2, 6, 5)
    bias = rand(3, 6) * 3
    out, weights = scaled_dot_product_attention(q, k, v, bias=bias)
    torch.testing.assert_close(weights, torch.softmax(q @ k.transpose(1, 2) / 2 + bias, dim=-1))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=bias))


def test_sdpa_bias_comes_before_the_mask():
    q, k, v = rand(3, 4), rand(5, 4), rand(5, 2)
    mask = causal_mask(3, 5)
    bias = torch.full((3, 5), 100.0, dtype=torch.float64)  # a huge bias cannot unmask a key
    _, weights = scaled_dot_product_attention(q, k, v, mask=mask, bias=bias)
    assert (weights[~mask] == 0).all()
    _, plain = scaled_dot_product_attention(q, k, v, mask=mask)
    torch.testing.assert_close(weights, plain)  # a constant bias changes nothing (shift)


@pytest.mark.parametrize(
    ("bias", "error", "message"),
    [
        (rand(3, 4), ValueError, r"bias of shape \(3, 4\) does not broadcast to .* \(3, 5\)"),
        (torch.zeros(3, 5), TypeError, "bias must have the dtype torch.float64"),
        ([[0.0] * 5] * 3, TypeError, "bias must be a floating-point torch.Tensor, got list"),
    ],
)
def test_sdpa_rejects_bad_bias(bias, error, message):
    with pytest.raises(error, match=message):
        scaled_dot_product_attention(rand(3, 4), rand(5, 4), rand(5, 2), bias=bias)


def test_multihead_bias_is_added_in_every_head():
    from attention_book.positions import alibi_bias

    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).double()
    x = rand(2, 5, 16)
    bias = alibi_bias(5, 4, dtype=torch.float64)  # (H, N, N)
    _, weights = mha(x, x, x, bias=bias)
    q = mha.split_heads(mha.q_proj(x))
    k = mha.split_heads(mha.k_proj(x))
    want = torch.softmax(q @ k.transpose(-2, -1) / 2 + bias, dim=-1)
    torch.testing.assert_close(weights, want)


def test_multihead_rotary_rotates_queries_and_keys_with_a_cache_offset():
    from attention_book.positions import apply_rotary, rotary_embedding

    torch.manual_seed(1)
    mha = MultiHeadAttention(16, 2).double()
    x = rand(2, 6, 16)
    cos, sin = rotary_embedding(10, 8, dtype=torch.float64)  # longer tables are fine
    out, weights = mha(x, x, x, rotary=(cos, sin))
    q = apply_rotary(mha.split_heads(mha.q_proj(x)), cos[:6], sin[:6])
    k = apply_rotary(mha.split_heads(mha.k_proj(x)), cos[:6], sin[:6])
    torch.testing.assert_close(weights, torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1))
    # the last 2 queries against all 6 keys: the same rows as the full computation
    last, last_weights = mha(x[:, 4:], x, x, rotary=(cos, sin))
    torch.testing.assert_close(last, out[:, 4:])
    torch.testing.assert_close(last_weights, weights[:, :, 4:])


def test_multihead_rotary_rejects_bad_tables():
    from attention_book.positions import rotary_embedding

    mha = MultiHeadAttention(16, 2).double()
    x = rand(1, 6, 16)
    cos, sin = rotary_embedding(6, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"rotary cos must be \(L >= 6, d_head / 2 = 4\)"):
        mha(x, x, x, rotary=(cos[:5], sin))
    with pytest.raises(ValueError, match=r"rotary sin must be .* got \(6, 2\)"):
        mha(x, x, x, rotary=(cos, sin[:, :2]))
    with pytest.raises(TypeError, match="rotary must be a \\(cos, sin\\) pair"):
        mha(x, x, x, rotary=[cos, sin])
    with pytest.raises(ValueError, match="at most as many queries as keys"):
        mha(x, x[:, :3], x[:, :3], rotary=(cos, sin))
