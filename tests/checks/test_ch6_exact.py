"""``checks.ch6_exact``: each checker accepts the reference and rejects wrong answers."""

import math

import torch

from attention_book import checks

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
