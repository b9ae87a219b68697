"""Sparse attention patterns: the blockwise computation equals dense attention under the mask."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from attention_book.efficient import sliding_window_attention, sparse_attention_mask

CASES = [
    (n, m, window, causal, dilation, tokens, block)
    for n, m, window, causal, dilation, tokens, block in itertools.product(
        [1, 7, 37],
        [37, 50],
        [1, 3, 9],
        [True, False],
        [1, 2, 3],
        [None, (0,), (0, 5, 20, 49)],
        [None, 4],
    )
    if n <= m and (dilation == 1 or n == m) and (tokens is None or max(tokens) < m)
]


def qkv(n, m, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(2, 3, n, 8, generator=g, dtype=dtype),
        torch.randn(2, 3, m, 8, generator=g, dtype=dtype),
        torch.randn(2, 3, m, 5, generator=g, dtype=dtype),
    )


@pytest.mark.parametrize(("n", "m", "window", "causal", "dilation", "tokens", "block"), CASES)
def test_blockwise_equals_dense_attention_under_the_mask(
    n, m, window, causal, dilation, tokens, block
):
    q, k, v = qkv(n, m)
    mask = sparse_attention_mask(n, window, causal, dilation=dilation, global_tokens=tokens, m=m)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    got = sliding_window_attention(
        q, k, v, window, causal, block_size=block, dilation=dilation, global_tokens=tokens
    )
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)


def test_float32_and_a_long_sequence():
    q, k, v = qkv(1000, 1000, dtype=torch.float32)
    mask = sparse_attention_mask(1000, 64, True, global_tokens=[0, 1])
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    got = sliding_window_attention(q, k, v, 64, global_tokens=[0, 1])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_mask_pattern():
    window = sparse_attention_mask(6, 2, causal=True)
    assert window.tolist()[3] == [False, False, True, True, False, False]
    both_ways = sparse_attention_mask(6, 2, causal=False)
    assert both_ways.tolist()[3] == [False, False, True, True, True, False]
    dilated = sparse_attention_mask(8, 3, causal=True, dilation=2)
    assert dilated.tolist()[6] == [False, False, True, False, True, False, True, False]
    with_global = sparse_attention_mask(6, 1, causal=False, global_tokens=[0])
    assert with_global[:, 0].all() and with_global[0].all()  # sees and is seen by everything
    assert with_global[1:, 1:].equal(torch.eye(5, dtype=torch.bool))
    causal_global = sparse_attention_mask(6, 1, causal=True, global_tokens=[2])
    assert not causal_global[1, 2] and causal_global[4, 2] and not causal_global[2, 3]
    assert sparse_attention_mask(4, 2, m=6).shape == (4, 6)


def test_global_tokens_reach_keys_the_window_cannot():
    q, k, v = qkv(64, 64, seed=1)
    local = sliding_window_attention(q, k, v, 4)
    v2 = v.clone()
    v2[..., 0, :] += 10.0  # change only the first value: only queries that see key 0 change
    assert torch.equal(sliding_window_attention(q, k, v2, 4)[..., 10:, :], local[..., 10:, :])
    changed = sliding_window_attention(q, k, v2, 4, global_tokens=[0])[..., 10:, :]
    assert (
        changed - sliding_window_attention(q, k, v, 4, global_tokens=[0])[..., 10:, :]
    ).abs().min() > 0


def test_bad_input():
    q, k, v = qkv(8, 8)
    with pytest.raises(ValueError, match="dilation"):
        sliding_window_attention(q, k, v, 2, dilation=0)
    with pytest.raises(ValueError, match="N == M"):
        sliding_window_attention(q[..., :4, :], k, v, 2, dilation=2)
    with pytest.raises(ValueError, match=r"global_tokens must be positions in \[0, M=8\)"):
        sliding_window_attention(q, k, v, 2, global_tokens=[8])
    with pytest.raises(ValueError, match="repeat"):
        sliding_window_attention(q, k, v, 2, global_tokens=[1, 1])
    with pytest.raises(TypeError, match="global_tokens"):
        sliding_window_attention(q, k, v, 2, global_tokens=[0.5])
    with pytest.raises(ValueError, match="m must be >= n"):
        sparse_attention_mask(8, 2, m=4)
    with pytest.raises(ValueError, match="window"):
        sparse_attention_mask(8, 0)
