"""FlashAttention's backward pass against PyTorch's autograd of SDPA, and its log-sum-exp."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attention_book.attention import causal_mask
from attention_book.bench import peak_memory
from attention_book.efficient import flash as flash_module
from attention_book.efficient import (
    flash_attention,
    flash_attention_backward,
    flash_attention_with_lse,
)

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4}


def qkv(n, m, d=16, d_v=8, lead=(2, 3), dtype=torch.float64, seed=0, grad=True):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*lead, n, d, generator=g, dtype=dtype)
    k = torch.randn(*lead, m, d, generator=g, dtype=dtype)
    v = torch.randn(*lead, m, d_v, generator=g, dtype=dtype)
    grad_out = torch.randn(*lead, n, d_v, generator=g, dtype=dtype)
    return (*(x.requires_grad_(grad) for x in (q, k, v)), grad_out)


def reference(q, k, v, grad_out, causal=False, scale=None):
    """Output and gradients of PyTorch's SDPA, through its own autograd."""
    mask = causal_mask(q.shape[-2], k.shape[-2]) if causal else None
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    return out, torch.autograd.grad(out, (q, k, v), grad_out)


def reference_lse(q, k, causal=False, scale=None):
    s = (q @ k.transpose(-2, -1)) * (scale or 1 / math.sqrt(q.shape[-1]))
    if causal:
        s = s.masked_fill(~causal_mask(q.shape[-2], k.shape[-2]), -math.inf)
    return torch.logsumexp(s, dim=-1)


CASES = [  # n, m, block_size, lead, scale, d_v
    (37, 53, 16, (2, 3), None, 8),  # no block divides either length; N != M
    (53, 53, (16, 7), (1,), 0.3, 5),  # a custom scale; query and key blocks differ
    (64, 100, (8, 32), (2, 2, 2), None, 16),  # three leading dims; d_v = d
    (20, 20, 64, (), None, 3),  # no leading dims; one tile holds everything
    (1, 9, 4, (3,), None, 8),  # one query
    (100, 100, (256, 1024), (1, 2), None, 8),  # the default blocks
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("n", "m", "block_size", "lead", "scale", "d_v"), CASES)
def test_gradients_equal_sdpa(n, m, block_size, lead, scale, d_v, causal, dtype):
    q, k, v, grad_out = qkv(n, m, d_v=d_v, lead=lead, dtype=dtype, seed=n + m)
    out = flash_attention(q, k, v, causal=causal, block_size=block_size, scale=scale)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    want_out, want = reference(q, k, v, grad_out, causal, scale)
    torch.testing.assert_close(out, want_out, atol=TOLERANCE[dtype], rtol=0)
    for name, got, expected in zip(("dq", "dk", "dv"), grads, want, strict=True):
        assert got.dtype == dtype and got.shape == expected.shape, name
        torch.testing.assert_close(got, expected, atol=TOLERANCE[dtype], rtol=0, msg=name)


@pytest.mark.parametrize("causal", [False, True])
def test_the_public_backward_equals_autograd(causal):
    q, k, v, grad_out = qkv(37, 53, d_v=5, lead=(2,))
    out, lse = flash_attention_with_lse(q, k, v, causal=causal, block_size=(8, 16))
    grads = flash_attention_backward(
        grad_out, q, k, v, out, lse, causal=causal, block_size=(16, 8), scale=None
    )
    _, want = reference(q, k, v, grad_out, causal)
    for got, expected in zip(grads, want, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 24),
    extra=st.integers(0, 24),
    block_q=st.integers(1, 30),
    block_k=st.integers(1, 30),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_tiled_gradients_equal_exact(n, extra, block_q, block_k, causal, seed):
    q, k, v, grad_out = qkv(n, n + extra, d=4, d_v=3, lead=(2,), seed=seed)
    out = flash_attention(q, k, v, causal=causal, block_size=(block_q, block_k))
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    _, want = reference(q, k, v, grad_out, causal)
    for got, expected in zip(grads, want, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


def test_gradcheck_on_a_tiny_case():
    q, k, v, _ = qkv(5, 7, d=3, d_v=2, lead=(1,))
    for causal in (False, True):
        assert torch.autograd.gradcheck(
            lambda q, k, v, c=causal: flash_attention(q, k, v, causal=c, block_size=(2, 3)),
            (q, k, v),
        )
        assert torch.autograd.gradcheck(
            lambda q, k, v, c=causal: flash_attention_with_lse(q, k, v, c, (3, 2), 0.7)[1],
            (q, k, v),
        )


@pytest.mark.parametrize("causal", [False, True])
def test_lse_is_the_log_sum_exp_of_the_scaled_scores(causal):
    q, k, v, _ = qkv(37, 53, grad=False)
    for scale in (None, 0.3):
        out, lse = flash_attention_with_lse(q, k, v, causal, 16, scale)
        assert lse.shape == (2, 3, 37) and lse.dtype == torch.float64
        torch.testing.assert_close(lse, reference_lse(q, k, causal, scale), atol=1e-12, rtol=0)
        assert torch.equal(out, flash_attention(q, k, v, causal, 16, scale))


def test_lse_when_scores_could_overflow():
    q, k, v, _ = qkv(40, 40, grad=False)  # scores in the thousands: the rescaling step runs
    _, lse = flash_attention_with_lse(30 * q, 30 * k, v, block_size=(8, 16))
    assert lse.abs().max() > 1000
    torch.testing.assert_close(lse, reference_lse(30 * q, 30 * k), atol=1e-9, rtol=0)


def test_lse_of_half_precision_is_float32():
    q, k, v, _ = qkv(30, 30, dtype=torch.bfloat16, grad=False)
    out, lse = flash_attention_with_lse(q, k, v, block_size=8)
    assert out.dtype == torch.bfloat16 and lse.dtype == torch.float32
    torch.testing.assert_close(lse, reference_lse(q.float(), k.float()), atol=1e-5, rtol=0)


def test_gradient_through_lse_equals_autograd():
    q, k, v, grad_out = qkv(21, 30, lead=(2,))
    weight = torch.randn(2, 21, dtype=torch.float64)
    for causal in (False, True):
        out, lse = flash_attention_with_lse(q, k, v, causal, (4, 8))
        got = torch.autograd.grad((out * grad_out).sum() + (lse * weight).sum(), (q, k, v))
        mask = causal_mask(21, 30) if causal else None
        want_out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        loss = (want_out * grad_out).sum() + (reference_lse(q, k, causal) * weight).sum()
        for a, b in zip(got, torch.autograd.grad(loss, (q, k, v)), strict=True):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_only_the_inputs_that_need_a_gradient_get_one():
    q, k, v, grad_out = qkv(12, 12, grad=False)
    v.requires_grad_(True)
    out = flash_attention(q, k, v, block_size=4)
    (dv,) = torch.autograd.grad(out, (v,), grad_out)
    v_ref = v.detach().clone().requires_grad_(True)
    want = F.scaled_dot_product_attention(q, k, v_ref)
    torch.testing.assert_close(dv, torch.autograd.grad(want, v_ref, grad_out)[0])


def test_half_precision_gradients():
    q, k, v, grad_out = qkv(40, 50, dtype=torch.bfloat16)
    out = flash_attention(q, k, v, causal=True, block_size=16)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    full = [x.detach().float().requires_grad_(True) for x in (q, k, v)]
    _, want = reference(*full, grad_out.float(), causal=True)
    for got, expected in zip(grads, want, strict=True):
        assert got.dtype == torch.bfloat16
        assert (got.float() - expected).abs().max() < 5e-2


def test_the_forward_saves_only_inputs_output_and_lse():
    q, k, v, grad_out = qkv(64, 80, lead=(1, 2))
    saved = []

    def pack(x):
        saved.append(x.shape)
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        out = flash_attention(q, k, v, causal=True, block_size=16)
    assert saved == [q.shape, k.shape, v.shape, out.shape, (1, 2, 64)]
    out.backward(grad_out)
    assert all(x.grad is not None for x in (q, k, v))


def test_no_grad_path_is_unchanged(monkeypatch):
    q, k, v, _ = qkv(37, 53, dtype=torch.float32)
    with_grad = flash_attention(q, k, v, causal=True, block_size=16)
    assert with_grad.grad_fn is not None

    def no_autograd(*args):
        raise AssertionError("the autograd function ran for tensors that need no gradient")

    monkeypatch.setattr(flash_module._FlashAttention, "apply", no_autograd)
    plain = [x.detach() for x in (q, k, v)]
    out = flash_attention(*plain, causal=True, block_size=16)
    assert out.grad_fn is None and torch.equal(out, with_grad.detach())
    with torch.no_grad():
        assert torch.equal(flash_attention(q, k, v, causal=True, block_size=16), out)
    out_lse, _ = flash_attention_with_lse(*plain, causal=True, block_size=16)
    assert torch.equal(out_lse, out)


def test_the_backward_never_holds_the_score_matrix():
    q, k, v, grad_out = qkv(1024, 1024, d=32, d_v=32, lead=(1, 2), dtype=torch.float32)
    out, lse = flash_attention_with_lse(q, k, v)

    def naive():
        s = torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
        return torch.autograd.grad(s, (q, k, v), grad_out)

    def tiled():
        return flash_attention_backward(grad_out, q, k, v, out, lse, block_size=(128, 128))

    held, want = peak_memory(naive), peak_memory(tiled)
    assert held >= 3 * 1024 * 1024 * 4 * 2  # at least scores, weights and dP, two heads
    assert want < held / 10, (want, held)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"block_size": 0}, ValueError, "block_size must be > 0, got 0"),
        ({"block_size": (4, -1)}, ValueError, r"block_size\[1\] must be > 0, got -1"),
        ({"block_size": (4, 2, 1)}, TypeError, "block_size must be an int or a pair"),
        ({"causal": "yes"}, TypeError, "causal must be a bool"),
        ({"scale": -1.0}, ValueError, "scale must be a finite number > 0"),
        ({"q": "swap"}, ValueError, "causal attention needs N <= M"),
        ({"grad_out": (3, 5, 8)}, ValueError, r"grad_out must be \(\.\.\., N, d_v\) = \(2, 5, 8\)"),
        ({"out": (2, 5, 7)}, ValueError, r"out must be \(\.\.\., N, d_v\).*got \(2, 5, 7\)"),
        ({"grad_out": (5, 8)}, ValueError, r"grad_out must be .*got \(5, 8\)"),
        ({"grad_out": (8,)}, ValueError, r"grad_out must have at least 2 dimension\(s\)"),
        ({"lse": (2, 5, 1)}, ValueError, r"lse must be \(\.\.\., N\) = \(2, 5\).*\(2, 5, 1\)"),
        ({"grad_lse": (2, 6)}, ValueError, r"grad_lse must be \(\.\.\., N\).*got \(2, 6\)"),
        ({"k": (2, 7, 3)}, ValueError, r"k must be \(\.\.\., M, d\) with the leading dims"),
        ({"v": (2, 6, 8)}, ValueError, r"v must be \(\.\.\., M, d_v\) matching k"),
        ({"q": (5, 4)}, ValueError, r"k must be \(\.\.\., M, d\).*\(5, 4\)"),
        ({"q": "int"}, TypeError, "q must have a floating-point dtype, got torch.int64"),
        ({"grad_out": "int"}, TypeError, "grad_out must have a floating-point dtype"),
        ({"lse": "list"}, TypeError, "lse must be a torch.Tensor, got list"),
    ],
)
def test_backward_rejects_bad_arguments(change, error, message):
    q, k, v, grad_out = qkv(5, 7, d=4, lead=(2,), grad=False)
    args = {"grad_out": grad_out, "q": q, "k": k, "v": v}
    args["out"], args["lse"] = flash_attention_with_lse(q, k, v)
    kwargs = {"causal": True}
    for name, what in change.items():
        if name in ("block_size", "causal", "scale"):
            kwargs[name] = what
        elif what == "swap":  # 7 queries, 5 keys
            args["q"], args["k"], args["v"] = k, q, v[..., :5, :]
            args["grad_out"] = args["out"] = torch.zeros(2, 7, 8, dtype=torch.float64)
            args["lse"] = torch.zeros(2, 7, dtype=torch.float64)
        elif what == "int":
            args[name] = args[name].long()
        elif what == "list":
            args[name] = args[name].tolist()
        elif name == "grad_lse":
            kwargs[name] = torch.zeros(what, dtype=torch.float64)
        else:
            args[name] = torch.zeros(what, dtype=torch.float64)
    with pytest.raises(error, match=message):
        flash_attention_backward(**args, **kwargs)


def test_with_lse_rejects_bad_arguments():
    q, k, v, _ = qkv(5, 4, grad=False)
    with pytest.raises(ValueError, match="causal attention needs N <= M"):
        flash_attention_with_lse(q, k, v, causal=True)
    with pytest.raises(ValueError, match=r"block_size\[0\] must be > 0"):
        flash_attention_with_lse(q, k, v, block_size=(0, 4))
    with pytest.raises(TypeError, match="q must have a floating-point dtype"):
        flash_attention_with_lse(q.long(), k, v)
    with pytest.raises(ValueError, match=r"k must be \(\.\.\., M, d\)"):
        flash_attention_with_lse(q, k[..., :3], v)


def test_the_backward_pass_takes_its_own_default_blocks_or_the_given_ones(monkeypatch):
    seen = []
    backward = flash_module._backward

    def spy(*args):
        seen.append(args[-3:-1])  # (block_q, block_k)
        return backward(*args)

    monkeypatch.setattr(flash_module, "_backward", spy)
    q, k, v, grad_out = qkv(12, 20, lead=(2,))
    for block_size in (None, (8, 16), 4):
        flash_attention(q, k, v, block_size=block_size).backward(grad_out)
        flash_attention_with_lse(q, k, v, block_size=block_size)[0].backward(grad_out)
    assert seen == [(512, 256)] * 2 + [(8, 16)] * 2 + [(4, 4)] * 2
