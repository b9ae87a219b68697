import math

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings

from attention_book.attention import scaled_dot_product_attention, softmax


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
