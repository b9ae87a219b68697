"""``checks.ch6_exact``: each checker accepts the reference and rejects wrong answers."""

import math

import pytest
import torch

from attention_book import checks
from attention_book.checks import ch6_exact

# --- chapter 6: efficiency ---------------------------------------------------------------


def test_check_attention_flops(capsys):
    assert checks.check_attention_flops(lambda n, m, d, d_v: 2 * n * m * (d + d_v)) is True
    for wrong, named in [
        (lambda n, m, d, d_v: 4 * n * m * d, "the values have their own size d_v"),
        (lambda n, m, d, d_v: 2 * n * m * d, "a multiply-add is 2 FLOPs"),
        (lambda n, m, d, d_v: n * m * (d + d_v), "a multiply-add is 2 FLOPs"),
        (lambda n, m, d, d_v: 4 * n * n * d, "n queries and m keys differ"),
    ]:
        assert checks.check_attention_flops(wrong) is False
        assert named in capsys.readouterr().out


def test_check_max_tokens(capsys):
    def reference(memory_bytes, heads, bytes_per_element):
        return math.isqrt(memory_bytes // (heads * bytes_per_element))

    assert checks.check_max_tokens(reference) is True
    for wrong, named in [
        (lambda mem, h, b: int(math.sqrt(mem / (h * b))), "exact for huge numbers"),
        (lambda mem, h, b: round(math.sqrt(mem / (h * b))), "16-bit floats"),
        (lambda mem, h, b: math.sqrt(mem // (h * b)), "16 GiB, 8 heads"),  # a float
        (lambda mem, h, b: math.isqrt(mem // b), "16 GiB, 8 heads"),  # forgets the heads
    ]:
        assert checks.check_max_tokens(wrong) is False
        assert named in capsys.readouterr().out


def _online(x, block_size):
    m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype)
    total = torch.zeros(x.shape[:-1], dtype=x.dtype)
    for j in range(0, x.shape[-1], block_size):
        block = x[..., j : j + block_size]
        new = torch.maximum(m, block.amax(-1))
        total = total * torch.exp(m - new) + torch.exp(block - new[..., None]).sum(-1)
        m = new
    return m, total


def _online_no_rescale(x, block_size):  # forgets to rescale the running sum
    m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype)
    total = torch.zeros(x.shape[:-1], dtype=x.dtype)
    for j in range(0, x.shape[-1], block_size):
        block = x[..., j : j + block_size]
        m = torch.maximum(m, block.amax(-1))
        total = total + torch.exp(block - m[..., None]).sum(-1)
    return m, total


def _online_unstable(x, block_size):  # no max at all: exp overflows
    return x.amax(-1), torch.exp(x).sum(-1) / torch.exp(x.amax(-1))


def _online_drops_tail(x, block_size):  # skips the last partial block
    full = x.shape[-1] // block_size * block_size
    return _online(x[..., :full], block_size)


def test_check_online_softmax(capsys):
    assert checks.check_online_softmax(_online) is True
    for wrong, named in [
        (_online_no_rescale, "the max grows in every block"),
        (_online_unstable, "must not overflow"),
        (_online_drops_tail, "later blocks only add"),
    ]:
        assert checks.check_online_softmax(wrong) is False
        assert named in capsys.readouterr().out


def test_check_merge_partial_attention(capsys):
    from attention_book.efficient import merge_partial_attention

    def naive_merge(out_a, lse_a, out_b, lse_b):  # exp without subtracting a max
        wa, wb = torch.exp(lse_a), torch.exp(lse_b)
        total = wa + wb
        return (wa[..., None] * out_a + wb[..., None] * out_b) / total[..., None], torch.log(total)

    def average(out_a, lse_a, out_b, lse_b):  # ignores how much weight each part carries
        return (out_a + out_b) / 2, torch.logaddexp(lse_a, lse_b)

    def max_lse(out_a, lse_a, out_b, lse_b):  # keeps lse as the larger part's
        top = torch.maximum(lse_a, lse_b)
        wa, wb = torch.exp(lse_a - top), torch.exp(lse_b - top)
        out = (wa[..., None] * out_a + wb[..., None] * out_b) / (wa + wb)[..., None]
        return out, top

    assert checks.check_merge_partial_attention(merge_partial_attention) is True
    for wrong, named in [
        (naive_merge, "scores around 800"),
        (average, "4 keys + 5 keys"),
        (max_lse, "4 keys + 5 keys: the same as attention over all 9 (lse)"),
    ]:
        assert checks.check_merge_partial_attention(wrong) is False
        assert named in capsys.readouterr().out


# --- the backward pass of attention ------------------------------------------------------


def _probs(q, k, scale):
    return torch.softmax(scale * q @ k.transpose(-2, -1), dim=-1)


def _backward_without_d(q, k, v, grad_out, scale):  # dS = P * dP: forgets to subtract D
    p = _probs(q, k, scale)
    ds = p * (grad_out @ v.transpose(-2, -1))
    return scale * ds @ k, scale * ds.transpose(-2, -1) @ q, p.transpose(-2, -1) @ grad_out


def _backward_d_from_dp(q, k, v, grad_out, scale):  # D = rowsum(dP) instead of rowsum(P * dP)
    p = _probs(q, k, scale)
    dp = grad_out @ v.transpose(-2, -1)
    ds = p * (dp - dp.sum(-1, keepdim=True))
    return scale * ds @ k, scale * ds.transpose(-2, -1) @ q, p.transpose(-2, -1) @ grad_out


def _backward_d_wrong_axis(q, k, v, grad_out, scale):  # D = rowsum(P * dP) over the queries
    p = _probs(q, k, scale)
    dp = grad_out @ v.transpose(-2, -1)
    ds = p * (dp - (p * dp).sum(-2, keepdim=True))
    return scale * ds @ k, scale * ds.transpose(-2, -1) @ q, p.transpose(-2, -1) @ grad_out


def _backward_no_scale(q, k, v, grad_out, scale):  # dQ = dS K, dK = dS^T Q: no scale
    dq, dk, dv = ch6_exact._reference_attention_backward(q, k, v, grad_out, scale)
    return dq / scale, dk / scale, dv


def _backward_p_not_transposed(q, k, v, grad_out, scale):  # dV = P dO instead of P^T dO
    dq, dk, _ = ch6_exact._reference_attention_backward(q, k, v, grad_out, scale)
    return dq, dk, _probs(q, k, scale) @ grad_out


def _backward_scores_not_weights(q, k, v, grad_out, scale):  # dS = S * (dP - D): S, not P
    s = scale * q @ k.transpose(-2, -1)
    p = torch.softmax(s, dim=-1)
    d = (grad_out * (p @ v)).sum(-1, keepdim=True)
    ds = s * (grad_out @ v.transpose(-2, -1) - d)
    return scale * ds @ k, scale * ds.transpose(-2, -1) @ q, p.transpose(-2, -1) @ grad_out


def _backward_default_scale(q, k, v, grad_out, scale):  # ignores scale: 1 / sqrt(d) always
    return ch6_exact._reference_attention_backward(q, k, v, grad_out, q.shape[-1] ** -0.5)


def _flip(x):  # what x.T does (with a warning): reverses every dim, batch dims too
    return x.permute(*reversed(range(x.ndim)))


def _backward_2d_only(q, k, v, grad_out, scale):  # x.T instead of x.transpose(-2, -1)
    p = torch.softmax(scale * q @ _flip(k), dim=-1)
    d = (grad_out * (p @ v)).sum(-1, keepdim=True)
    ds = p * (grad_out @ _flip(v) - d)
    return scale * ds @ k, scale * _flip(ds) @ q, _flip(p) @ grad_out


def _backward_unstable(q, k, v, grad_out, scale):  # exp without subtracting the max
    e = torch.exp(scale * q @ k.transpose(-2, -1))
    p = e / e.sum(-1, keepdim=True)
    d = (grad_out * (p @ v)).sum(-1, keepdim=True)
    ds = p * (grad_out @ v.transpose(-2, -1) - d)
    return scale * ds @ k, scale * ds.transpose(-2, -1) @ q, p.transpose(-2, -1) @ grad_out


def test_check_attention_backward_accepts_the_reference(capsys):
    from attention_book.efficient import flash_attention_backward, flash_attention_with_lse

    def tiled(q, k, v, grad_out, scale):  # the package's FlashAttention backward
        out, lse = flash_attention_with_lse(q, k, v, scale=scale, block_size=2)
        return flash_attention_backward(grad_out, q, k, v, out, lse, block_size=2, scale=scale)

    assert checks.check_attention_backward(ch6_exact._reference_attention_backward) is True
    assert checks.check_attention_backward(tiled) is True
    assert "passes all 6 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (_backward_without_d, "one key: every weight is 1, so dq = dk = 0 (dq)"),
        (_backward_d_from_dp, "N = M = 4, d = 3, scale 1 / sqrt(d) (dq)"),
        (_backward_d_wrong_axis, "one key: every weight is 1, so dq = dk = 0 (dq)"),
        (_backward_no_scale, "N = M = 4, d = 3, scale 1 / sqrt(d) (dq)"),
        (_backward_p_not_transposed, "so dq = dk = 0\n   calling it raised RuntimeError"),
        (_backward_scores_not_weights, "N = M = 4, d = 3, scale 1 / sqrt(d) (dq)"),
        (_backward_default_scale, "use the given scale (0.5 here)"),
        (_backward_2d_only, "batch and head dims in front"),
        (_backward_unstable, "scores in the thousands must not overflow"),
        (lambda q, k, v, grad_out, scale: (q, k), "expected (dq, dk, dv)"),
    ],
)
def test_check_attention_backward_rejects_wrong_answers(capsys, wrong, named):
    assert checks.check_attention_backward(wrong) is False
    out = capsys.readouterr().out
    assert named in out
    assert "attention_backward failed a check" in out
