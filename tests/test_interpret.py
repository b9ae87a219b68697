"""Attention rollout and attention replacement, on small random modules."""

from __future__ import annotations

import pytest
import torch

from attention_book import seed_everything
from attention_book.attention import MultiHeadAttention
from attention_book.interpret import attention_rollout, replaced_attention
from attention_book.models.transformer import Encoder


def random_weights(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def test_rollout_of_one_layer_is_half_attention_half_identity() -> None:
    w = random_weights(1, 3, 4, 4)
    want = 0.5 * w[0].mean(0) + 0.5 * torch.eye(4, dtype=torch.float64)
    assert torch.allclose(attention_rollout(w), want)
    assert torch.allclose(attention_rollout(w, residual=False), w[0].mean(0))


def test_rollout_chains_later_layers_on_the_left() -> None:
    w = random_weights(3, 2, 5, 5, seed=1)
    a = [0.5 * w[i].mean(0) + 0.5 * torch.eye(5, dtype=torch.float64) for i in range(3)]
    assert torch.allclose(attention_rollout(w), a[2] @ a[1] @ a[0])
    raw = w.mean(1)
    assert torch.allclose(attention_rollout(w, residual=False), raw[2] @ raw[1] @ raw[0])
    assert not torch.allclose(attention_rollout(w), a[0] @ a[1] @ a[2])


def test_rollout_rows_sum_to_one_and_batches() -> None:
    w = random_weights(4, 2, 3, 6, 6, seed=2)  # (L, B, H, N, N)
    out = attention_rollout(w)
    assert out.shape == (2, 6, 6) and (out >= 0).all()
    assert torch.allclose(out.sum(-1), torch.ones(2, 6, dtype=torch.float64))
    assert torch.allclose(out[1], attention_rollout(w[:, 1]))


def test_rollout_of_identity_attention_is_identity() -> None:
    w = torch.eye(4).expand(3, 2, 4, 4)
    assert torch.allclose(attention_rollout(w), torch.eye(4))


def test_rollout_validates() -> None:
    with pytest.raises(ValueError, match=r"\(L, \.\.\., H, N, N\)"):
        attention_rollout(torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="square"):
        attention_rollout(torch.rand(2, 1, 4, 5))
    with pytest.raises(TypeError, match="weights must be a torch.Tensor"):
        attention_rollout([[1.0]])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="residual must be a bool"):
        attention_rollout(torch.rand(1, 1, 2, 2), residual=0.5)  # type: ignore[arg-type]


def test_replaced_attention_identity_changes_nothing_and_restores() -> None:
    seed_everything(0)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 5, 8)
    out, weights = mha(x, x, x)
    with replaced_attention(mha, lambda w: w):
        same, same_weights = mha(x, x, x)
    assert torch.allclose(same, out, atol=1e-6) and torch.equal(same_weights, weights)
    with replaced_attention(mha, lambda w: torch.full_like(w, 1 / w.shape[-1])):
        flat, flat_weights = mha(x, x, x)
    v = mha.split_heads(mha.v_proj(x))
    want = mha.out_proj(mha.merge_heads(v.mean(-2, keepdim=True).expand_as(v)))
    assert torch.allclose(flat, want, atol=1e-6)
    assert torch.allclose(flat_weights, torch.full_like(weights, 0.2))
    after, _ = mha(x, x, x)  # hooks are gone
    assert torch.equal(after, out)
    assert not mha._forward_hooks and not mha.v_proj._forward_hooks


def test_replaced_attention_in_an_encoder_layer() -> None:
    seed_everything(1)
    encoder = Encoder(8, 2, 2, 16).eval()
    x = torch.randn(1, 4, 8)
    base = encoder(x)
    perm = torch.tensor([3, 2, 1, 0])
    with replaced_attention(encoder.layers[1].self_attn, lambda w: w[..., perm]):
        changed = encoder(x)
        stored = encoder.attention_weights()[1]
    assert not torch.allclose(changed, base)
    assert torch.allclose(stored.sum(-1), torch.ones(1, 2, 4))
    assert torch.allclose(encoder(x), base)  # restored


def test_replaced_attention_restores_after_an_error_and_validates() -> None:
    mha = MultiHeadAttention(4, 1)
    x = torch.randn(1, 3, 4)
    with pytest.raises(ValueError, match=r"replace must return weights of shape \(1, 1, 3, 3\)"):
        with replaced_attention(mha, lambda w: w[..., :2]):
            mha(x, x, x)
    assert not mha._forward_hooks and not mha.v_proj._forward_hooks
    with pytest.raises(TypeError, match="module must be a MultiHeadAttention"):
        with replaced_attention(torch.nn.Linear(2, 2), lambda w: w):  # type: ignore[arg-type]
            pass
    with pytest.raises(TypeError, match="replace must be a function"):
        with replaced_attention(mha, 3):  # type: ignore[arg-type]
            pass
