"""``modern.selection``: top-k block attention against dense attention under its mask."""

import math

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings

from attention_book import modern
from attention_book.models.decoder import DecoderLM


def plain_mask(q, k, block_size, top_k, window):
    """Per query, from scratch: mean-pooled blocks, probabilities summed per query block."""
    b, h, n, d = q.shape
    hk = k.shape[1]
    g, nb = h // hk, n // block_size
    mask = torch.zeros(b, h, n, n, dtype=torch.bool)
    for bi in range(b):
        for kh in range(hk):
            kc = k[bi, kh, : nb * block_size].reshape(nb, block_size, d).mean(1)
            for i in range(n):
                qb = i // block_size
                mask[bi, kh * g : (kh + 1) * g, i, max(0, i - window) : i + 1] = True
                if qb == 0:
                    continue
                total = torch.zeros(qb)
                for j in range(qb * block_size, min(n, (qb + 1) * block_size)):
                    for hh in range(kh * g, (kh + 1) * g):
                        total += torch.softmax(q[bi, hh, j] @ kc[:qb].T / math.sqrt(d), -1)
                for blk in total.topk(min(top_k, qb)).indices.tolist():
                    cols = slice(blk * block_size, (blk + 1) * block_size)
                    mask[bi, kh * g : (kh + 1) * g, i, cols] = True
    return mask


def draw(seed, b, h, hk, n, d, dv=None):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, n, d, generator=gen, dtype=torch.float64)
    k = torch.randn(b, hk, n, d, generator=gen, dtype=torch.float64)
    v = torch.randn(b, hk, n, dv or d, generator=gen, dtype=torch.float64)
    return q, k, v


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    b=st.integers(1, 2),
    hk=st.integers(1, 2),
    group=st.integers(1, 2),
    n=st.integers(4, 40),
    d=st.integers(1, 5),
    block_size=st.integers(1, 6),
    window=st.integers(0, 7),
    data=st.data(),
)
def test_attention_equals_dense_attention_under_the_mask(
    b, hk, group, n, d, block_size, window, data
):
    if n // block_size < 1:
        block_size = n
    top_k = data.draw(st.integers(1, n // block_size))
    q, k, v = draw(n, b, hk * group, hk, n, d, dv=3)
    mask = modern.topk_block_mask(q, k, block_size, top_k, window)
    assert torch.equal(mask, plain_mask(q, k, block_size, top_k, window))
    kr, vr = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    want = F.scaled_dot_product_attention(q, kr, vr, attn_mask=mask)
    got = modern.topk_block_attention(q, k, v, block_size, top_k, window)
    assert got.shape == (b, hk * group, n, 3)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_the_mask_is_causal_and_holds_the_window():
    q, k, _ = draw(0, 1, 2, 2, 37, 4)
    mask = modern.topk_block_mask(q, k, 5, 3, 4)
    assert not mask.triu(1).any()
    i = torch.arange(37)
    local = (i[None] <= i[:, None]) & (i[None] >= i[:, None] - 4)
    assert mask[..., local].all()


def test_every_block_and_a_window_of_block_size_minus_1_is_causal_attention():
    q, k, v = draw(1, 1, 1, 1, 16, 3)
    mask = modern.topk_block_mask(q, k, 4, 4, 3)
    causal = torch.ones(16, 16, dtype=torch.bool).tril()
    assert torch.equal(mask[0, 0], causal)
    dense = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(modern.topk_block_attention(q, k, v, 4, 4, 3), dense)


def test_block_scores_are_probabilities_summed_per_query_block():
    q, k, _ = draw(2, 1, 2, 1, 13, 4)
    scores = modern.block_scores(q, k, 4)  # (1, 1, 4, 3)
    assert scores.shape == (1, 1, 4, 3)
    assert torch.isinf(scores[0, 0, 0]).all()
    # query block 3 holds one query (position 12), two heads: the probabilities add to 2
    torch.testing.assert_close(scores[0, 0, 3].sum(), torch.tensor(2.0, dtype=torch.float64))
    # query block 1: four queries, two heads, one block before it
    torch.testing.assert_close(scores[0, 0, 1, 0], torch.tensor(8.0, dtype=torch.float64))


def test_compress_blocks_drops_the_partial_block():
    k = torch.arange(10.0).view(10, 1)
    assert modern.compress_blocks(k, 4).flatten().tolist() == [1.5, 5.5]


def test_the_gradient_reaches_q_k_and_v():
    q, k, v = (t.requires_grad_() for t in draw(3, 1, 2, 1, 20, 4))
    modern.topk_block_attention(q, k, v, 4, 2, 3).sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (q, k, v))


def test_the_nsa_layer_trains_in_a_decoder_and_is_causal():
    torch.manual_seed(0)
    lm = DecoderLM(
        20,
        d_model=16,
        num_heads=4,
        num_layers=1,
        d_ff=32,
        max_len=40,
        attention=lambda i: modern.NativeSparseAttention(16, 4, 4, 2, 3, num_kv_heads=2),
    )
    ids = torch.randint(0, 20, (2, 30))
    logits = lm(ids)
    assert logits.shape == (2, 30, 20)
    changed = ids.clone()
    changed[:, 20:] = (changed[:, 20:] + 1) % 20
    torch.testing.assert_close(lm(changed)[:, :20], logits[:, :20])
    logits.sum().backward()
    assert lm.blocks[0].attn.gate.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="keeps no cache"):
        lm.blocks[0].attn(torch.zeros(1, 4, 16), None, cache=object())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"top_k": 0}, ValueError, "top_k must be > 0, got 0"),
        ({"top_k": 5}, ValueError, r"top_k must be at most .* 16 // 4 = 4 .* got 5"),
        ({"block_size": 0}, ValueError, "block_size must be > 0, got 0"),
        ({"block_size": 2.0}, TypeError, "block_size must be an int"),
        ({"window": -1}, ValueError, "window must be >= 0.*got -1"),
        ({"window": 1.5}, TypeError, "window must be an int"),
        (
            {"q": torch.zeros(1, 2, 15, 4)},
            ValueError,
            r"k must be .*\(1, H_kv, 15, 4\).*got \(1, 1, 16, 4\)",
        ),
        (
            {"q": torch.zeros(2, 16, 4)},
            ValueError,
            r"q must have at least 4 dimension\(s\), got shape \(2, 16, 4\)",
        ),
        ({"k": torch.zeros(1, 3, 16, 4)}, ValueError, r"H_kv dividing H = 2, got \(1, 3, 16, 4\)"),
        (
            {"v": torch.zeros(1, 1, 15, 4)},
            ValueError,
            r"v must be .*\(1, 1, 16\), got \(1, 1, 15, 4\)",
        ),
        ({"q": [[0.0]]}, TypeError, "q must be a torch.Tensor, got list"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    args = {
        "q": torch.zeros(1, 2, 16, 4),
        "k": torch.zeros(1, 1, 16, 4),
        "v": torch.zeros(1, 1, 16, 4),
        "block_size": 4,
        "top_k": 2,
        "window": 3,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        modern.topk_block_attention(**args)
    if "v" not in kwargs:
        args.pop("v")
        with pytest.raises(error, match=match):
            modern.topk_block_mask(**args)
