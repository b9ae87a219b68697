"""``modern.linear``: gated linear attention and the delta rule in three forms each."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from torch.nn import functional as F

from attention_book import efficient, modern

F64 = torch.float64


def inputs(batch, n, d_k, d_v, seed=0, dtype=F64):
    """Unit-norm keys, decays in (0, 1], betas in [0, 2]."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*batch, n, d_k, generator=g, dtype=dtype)
    k = F.normalize(torch.randn(*batch, n, d_k, generator=g, dtype=dtype), dim=-1)
    v = torch.randn(*batch, n, d_v, generator=g, dtype=dtype)
    log_decay = -torch.rand(*batch, n, generator=g, dtype=dtype)
    beta = 2 * torch.rand(*batch, n, generator=g, dtype=dtype)
    state = torch.randn(*batch, d_v, d_k, generator=g, dtype=dtype)
    return q, k, v, log_decay, beta, state


def reference(q, k, v, log_decay, beta=None, state=None):
    """The plain recurrence, written with the full matrices I - β k kᵀ."""
    d_k, d_v = q.shape[-1], v.shape[-1]
    s = q.new_zeros(*q.shape[:-2], d_v, d_k) if state is None else state
    eye = torch.eye(d_k, dtype=q.dtype)
    outs = []
    for t in range(q.shape[-2]):
        a = torch.exp(log_decay[..., t])[..., None, None]
        kt, vt = k[..., t, :, None], v[..., t, :, None]
        if beta is None:
            s = a * s + vt @ kt.transpose(-1, -2)
        else:
            b = beta[..., t, None, None]
            s = a * s @ (eye - b * kt @ kt.transpose(-1, -2)) + b * vt @ kt.transpose(-1, -2)
        outs.append((s @ q[..., t, :, None])[..., 0])
    return torch.stack(outs, -2), s


def close(a, b, tol=1e-10):
    return (a - b).abs().max().item() < tol


# --- decay_mask --------------------------------------------------------------------------


def test_decay_mask_small_example():
    ld = torch.log(torch.tensor([0.5, 0.25, 1.0], dtype=F64))
    want = torch.tensor([[1, 0, 0], [0.25, 1, 0], [0.25, 1, 1]], dtype=F64)
    assert close(modern.decay_mask(ld), want, 1e-15)


@given(st.integers(1, 12), st.integers(0, 3))
@settings(max_examples=30, deadline=None)
def test_decay_mask_is_products_of_decays(n, seed):
    ld = inputs((2,), n, 1, 1, seed)[3]
    mask = modern.decay_mask(ld)
    a = torch.exp(ld)
    for t in range(n):
        for s in range(n):
            want = torch.prod(a[:, s + 1 : t + 1], -1) if s <= t else torch.zeros(2, dtype=F64)
            assert close(mask[:, t, s], want, 1e-12)


def test_decay_mask_is_stable_for_long_strong_decay():
    ld = torch.full((4000,), -5.0, dtype=torch.float32)
    mask = modern.decay_mask(ld)
    assert torch.isfinite(mask).all() and torch.equal(mask.diagonal(), torch.ones(4000))
    assert mask[-1, -2].item() == pytest.approx(torch.exp(torch.tensor(-5.0)).item(), rel=1e-6)


# --- three forms agree -------------------------------------------------------------------

shapes = st.tuples(
    st.lists(st.integers(1, 3), max_size=2),
    st.integers(1, 17),
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(1, 20),
    st.integers(0, 5),
)


@given(shapes)
@settings(max_examples=40, deadline=None)
def test_gated_linear_attention_three_forms(shape):
    batch, n, d_k, d_v, size, seed = shape
    q, k, v, ld, _, s0 = inputs(tuple(batch), n, d_k, d_v, seed)
    want, want_state = reference(q, k, v, ld, state=s0)
    for chunk in (None, size, n):
        out, state = modern.gated_linear_attention(
            q, k, v, ld, chunk, initial_state=s0, return_state=True
        )
        assert close(out, want) and close(state, want_state)


@given(shapes, st.booleans())
@settings(max_examples=40, deadline=None)
def test_delta_rule_three_forms(shape, gated):
    batch, n, d_k, d_v, size, seed = shape
    q, k, v, ld, beta, s0 = inputs(tuple(batch), n, d_k, d_v, seed)
    ld = ld if gated else torch.zeros_like(ld)
    want, want_state = reference(q, k, v, ld, beta, s0)
    for chunk in (None, size, n):
        out, state = modern.delta_rule_attention(
            q,
            k,
            v,
            beta,
            chunk,
            log_decay=ld if gated else None,
            initial_state=s0,
            return_state=True,
        )
        assert close(out, want, 1e-8) and close(state, want_state, 1e-8)


def test_parallel_form_is_masked_attention():
    q, k, v, ld, _, _ = inputs((2,), 9, 3, 4)
    out = modern.gated_linear_attention(q, k, v, ld, 9)
    assert close(out, ((q @ k.transpose(-1, -2)) * modern.decay_mask(ld)) @ v, 1e-12)
    plain = modern.gated_linear_attention(q, k, v, torch.zeros_like(ld), 100)
    assert close(plain, ((q @ k.transpose(-1, -2)).tril()) @ v, 1e-12)


def test_delta_rule_with_beta_one_stores_the_value_exactly():
    k = torch.eye(3, dtype=F64)[[0, 0]][None]  # the same key twice
    v = torch.tensor([[[1.0, 0.0], [0.0, 5.0]]], dtype=F64)
    _, state = modern.delta_rule_attention(k, k, v, torch.ones(1, 2, dtype=F64), return_state=True)
    assert close(state @ k[0, 0], torch.tensor([[0.0, 5.0]], dtype=F64), 1e-15)
    _, added = modern.gated_linear_attention(
        k, k, v, torch.zeros(1, 2, dtype=F64), return_state=True
    )
    assert close(added @ k[0, 0], torch.tensor([[1.0, 5.0]], dtype=F64), 1e-15)


def test_float32_forms_agree():
    q, k, v, ld, beta, _ = inputs((2, 2), 70, 8, 8, dtype=torch.float32)
    for fn, gate in ((modern.gated_linear_attention, ld), (modern.delta_rule_attention, beta)):
        rec = fn(q, k, v, gate)
        assert close(fn(q, k, v, gate, 16), rec, 1e-4)
        assert close(fn(q, k, v, gate, 70), rec, 1e-4)


# --- gradients ---------------------------------------------------------------------------


def grad_inputs():
    q, k, v, ld, beta, s0 = inputs((1,), 5, 2, 2, seed=1)
    beta = 0.1 + 0.9 * beta  # away from the [0, 2] edges for finite differences
    return [x.clone().requires_grad_() for x in (q, k, v, ld - 0.01, beta, s0)]


def test_gradcheck_through_chunked_forms():
    def delta(q, k, v, ld, beta, s0):
        return modern.delta_rule_attention(q, k, v, beta, 2, log_decay=ld, initial_state=s0)

    def gla(q, k, v, ld, s0):
        return modern.gated_linear_attention(q, k, v, ld, 2, initial_state=s0)

    args = grad_inputs()
    assert torch.autograd.gradcheck(delta, args, fast_mode=True)
    assert torch.autograd.gradcheck(gla, args[:4] + args[5:], fast_mode=True)


@pytest.mark.parametrize("chunk", [2, 3, 5])
def test_chunked_gradients_match_the_recurrence(chunk):
    q, k, v, ld, beta, s0 = args = grad_inputs()
    for fn, gate, extra in (
        (modern.delta_rule_attention, beta, {"log_decay": ld}),
        (modern.gated_linear_attention, ld, {}),
    ):
        grads = [
            torch.autograd.grad(
                fn(q, k, v, gate, c, initial_state=s0, **extra).pow(2).sum(),
                args,
                allow_unused=True,
            )
            for c in (chunk, None)
        ]
        for a, b in zip(*grads, strict=True):
            assert (a is None and b is None) or close(a, b, 1e-10)


# --- state size --------------------------------------------------------------------------


def test_linear_state_bytes():
    assert modern.linear_state_bytes(2, 3, 4, 5) == 2 * 3 * 4 * 5 * 4
    assert modern.linear_state_bytes(1, 1, 8, 8, batch_size=3, dtype=torch.bfloat16) == 384
    # one token of KV cache per head holds d_k + d_v numbers; the state d_k * d_v
    kv = efficient.kv_cache_bytes(2, 3, 4, length=4)
    assert modern.linear_state_bytes(2, 3, 4, 4) == kv // 2


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0, 1, 1, 1), ValueError, "num_layers must be > 0, got 0"),
        ((1, 1.5, 1, 1), TypeError, "num_heads must be an int, got float"),
        ((1, 1, 1, -2), ValueError, "d_v must be > 0, got -2"),
    ],
)
def test_linear_state_bytes_errors(args, error, message):
    with pytest.raises(error, match=message):
        modern.linear_state_bytes(*args)
    with pytest.raises(TypeError, match="dtype must be a torch.dtype, got str"):
        modern.linear_state_bytes(1, 1, 1, 1, dtype="float32")


# --- errors ------------------------------------------------------------------------------


def test_errors_name_argument_and_shapes():
    q, k, v, ld, beta, s0 = inputs((2,), 5, 3, 4)
    gla, delta = modern.gated_linear_attention, modern.delta_rule_attention
    cases = [
        (lambda: gla(q, k[:, :4], v, ld), r"k must have shape .* = \(2, 5, 3\), got \(2, 4, 3\)"),
        (lambda: gla(q, k, v[:, :4], ld), r"v must have shape .*\(2, 5, 4\), got \(2, 4, 4\)"),
        (lambda: gla(q, k, v, ld[:, :3]), r"log_decay must have shape .*\(2, 5\), got \(2, 3\)"),
        (lambda: delta(q, k, v, beta[:1]), r"beta must have shape .*\(2, 5\), got \(1, 5\)"),
        (
            lambda: delta(q, k, v, beta, log_decay=ld[:1]),
            r"log_decay must have shape .*\(2, 5\), got \(1, 5\)",
        ),
        (
            lambda: gla(q, k, v, ld, initial_state=s0[..., :2]),
            r"initial_state must have shape \(..., d_v, d_k\) = \(2, 4, 3\), got \(2, 4, 2\)",
        ),
        (lambda: gla(q, k, v, ld + 0.5), r"log_decay must be <= 0 everywhere"),
        (lambda: delta(q, k, v, beta, log_decay=ld + 2), r"log_decay must be <= 0 everywhere"),
        (lambda: modern.decay_mask(ld + 2), r"log_decay must be <= 0 everywhere"),
        (lambda: delta(q, k, v, beta + 2.5), r"beta must lie in \[0, 2\].*stops contracting"),
        (lambda: delta(q, k, v, beta - 3), r"beta must lie in \[0, 2\].*got min"),
        (lambda: gla(q, k, v, ld, 0), r"chunk_size must be > 0, got 0"),
        (lambda: delta(q, k, v, beta, -1), r"chunk_size must be > 0, got -1"),
        (
            lambda: gla(q[:, :0], k[:, :0], v[:, :0], ld[:, :0]),
            r"q must hold at least one position \(N >= 1\), got \(2, 0, 3\)",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    type_cases = [
        (lambda: gla(q, k, v, ld, 2.0), "chunk_size must be an int, got float"),
        (lambda: gla(q.tolist(), k, v, ld), "q must be a torch.Tensor, got list"),
        (lambda: delta(q, k, v, beta.long()), "beta must have a floating-point dtype"),
        (lambda: modern.decay_mask([0.0]), "log_decay must be a torch.Tensor, got list"),
        (lambda: gla(q, k.float(), v, ld), "k must share q's dtype and device, got torch.float32"),
        (lambda: delta(q, k, v, beta.float()), "beta must share q's dtype and device"),
        (
            lambda: delta(q, k, v, beta, log_decay=ld.float()),
            "log_decay must share q's dtype and device",
        ),
        (lambda: gla(q, k, v, ld, initial_state=s0.float()), "initial_state must share"),
    ]
    for call, message in type_cases:
        with pytest.raises(TypeError, match=message):
            call()
