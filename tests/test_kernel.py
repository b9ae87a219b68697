"""Kernel and low-rank attention: exact against their formulas, approximate against softmax."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attention_book.efficient import linformer_attention, performer_attention, random_features


def qkv(n=96, m=96, d=16, seed=0, spread=0.5):
    g = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(2, 2, size, dim, generator=g, dtype=torch.float64) * spread
        for size, dim in ((n, d), (m, d), (m, 6))
    )


def performer_reference(q, k, v, w, causal):
    root = q.shape[-1] ** -0.25
    xq, xk = q * root, k * root
    fq = torch.exp(xq @ w.T - xq.pow(2).sum(-1, keepdim=True) / 2)
    fk = torch.exp(xk @ w.T - xk.pow(2).sum(-1, keepdim=True) / 2)
    a = fq @ fk.transpose(-2, -1)
    if causal:
        a = a * torch.ones(a.shape[-2:], dtype=torch.bool).tril(a.shape[-1] - a.shape[-2])
    return (a @ v) / a.sum(-1, keepdim=True)


@pytest.mark.parametrize(("n", "causal", "chunk"), [(96, False, 64), (96, True, 7), (40, True, 16)])
def test_performer_matches_its_formula(n, causal, chunk):
    q, k, v = qkv(n=n)
    w = random_features(32, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = performer_attention(q, k, v, w, causal=causal, chunk_size=chunk)
    torch.testing.assert_close(got, performer_reference(q, k, v, w, causal))


def test_performer_error_shrinks_with_more_features():
    q, k, v = qkv()
    exact = F.scaled_dot_product_attention(q, k, v)
    errors = []
    for m in (8, 128, 2048):
        runs = [
            (
                performer_attention(
                    q,
                    k,
                    v,
                    random_features(
                        m, 16, generator=torch.Generator().manual_seed(s), dtype=torch.float64
                    ),
                )
                - exact
            )
            .abs()
            .mean()
            for s in range(4)
        ]
        errors.append(float(sum(runs)) / len(runs))
    assert errors[0] > 2 * errors[1] > 4 * errors[2]


def test_performer_does_not_overflow_on_large_scores():
    q, k, v = qkv(spread=8.0)
    w = random_features(64, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.isfinite(performer_attention(q, k, v, w)).all()


def test_random_features_are_gaussian_rows_in_orthogonal_blocks():
    w = random_features(40, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert w.shape == (40, 16)
    block = w[:16] / w[:16].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(block @ block.T, torch.eye(16, dtype=torch.float64))
    many = random_features(4096, 8, orthogonal=False, generator=torch.Generator().manual_seed(0))
    assert abs(float(many.var()) - 1) < 0.05 and abs(float(many.mean())) < 0.05


def test_linformer_with_the_identity_is_softmax_attention():
    q, k, v = qkv()
    eye = torch.eye(96, dtype=torch.float64)
    torch.testing.assert_close(
        linformer_attention(q, k, v, eye), F.scaled_dot_product_attention(q, k, v)
    )
    e, f = torch.randn(12, 96, dtype=torch.float64), torch.randn(12, 96, dtype=torch.float64)
    want = F.scaled_dot_product_attention(q, e @ k, f @ v)
    torch.testing.assert_close(linformer_attention(q, k, v, e, f), want)


def test_bad_input():
    q, k, v = qkv()
    with pytest.raises(ValueError, match=r"features must be \(m, d\) with d=16"):
        performer_attention(q, k, v, torch.randn(8, 15))
    with pytest.raises(ValueError, match=r"proj_k must be \(r, M\) with M=96"):
        linformer_attention(q, k, v, torch.randn(8, 95))
    with pytest.raises(ValueError, match="proj_v"):
        linformer_attention(q, k, v, torch.randn(8, 96), torch.randn(4, 96))
    with pytest.raises(ValueError, match="num_features"):
        random_features(0, 4)
    with pytest.raises(TypeError, match="orthogonal"):
        random_features(4, 4, orthogonal=1)
    assert math.isfinite(
        float(performer_attention(q, k, v, torch.randn(4, 16, dtype=torch.float64)).sum())
    )
