"""``checks.ch6_sparse_kernel``: each checker accepts the reference and rejects wrong answers."""

import torch
from torch import nn

from attention_book import checks

# --- check_dilated_window_mask and check_causal_linear_attention (chapter 6) ------------


def test_check_dilated_window_mask(capsys):
    def reference(n, window, dilation):
        return efficient_mask(n, window, dilation=dilation)

    def one_too_many(n, window, dilation):  # window + 1 keys
        return efficient_mask(n, window + 1, dilation=dilation)

    def ignores_dilation(n, window, dilation):
        return efficient_mask(n, window)

    def both_sides(n, window, dilation):  # not causal
        return efficient_mask(n, window, causal=False, dilation=dilation)

    def as_ints(n, window, dilation):
        return efficient_mask(n, window, dilation=dilation).int()

    assert checks.check_dilated_window_mask(reference) is True
    assert "passes all 5 checks" in capsys.readouterr().out
    for wrong, named in [
        (one_too_many, "window 2, no gaps"),
        (ignores_dilation, "window 3, dilation 2"),
        (both_sides, "window 2, no gaps"),
        (as_ints, "expected a bool tensor"),
    ]:
        assert checks.check_dilated_window_mask(wrong) is False
        assert named in capsys.readouterr().out


def efficient_mask(n, window, causal=True, dilation=1):
    from attention_book.efficient import sparse_attention_mask

    return sparse_attention_mask(n, window, causal, dilation=dilation)


def test_check_causal_linear_attention(capsys):
    from attention_book.efficient import linear_attention

    def reference(q, k, v, chunk_size):
        return linear_attention(q, k, v, causal=True, chunk_size=chunk_size)

    def not_causal(q, k, v, chunk_size):
        return linear_attention(q, k, v)

    def forgets_earlier_chunks(q, k, v, chunk_size):
        outs = []
        for s in range(0, q.shape[-2], chunk_size):
            part = slice(s, s + chunk_size)
            outs.append(
                linear_attention(q[..., part, :], k[..., part, :], v[..., part, :], causal=True)
            )
        return torch.cat(outs, dim=-2)

    def excludes_itself(q, k, v, chunk_size):  # strictly earlier keys, with the first kept
        a = (nn.functional.elu(q) + 1) @ (nn.functional.elu(k) + 1).transpose(-2, -1)
        a = a.tril(-1) + torch.eye(q.shape[-2]) * 1e-9
        return (a @ v) / a.sum(-1, keepdim=True)

    def softmax_attention(q, k, v, chunk_size):
        return nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    assert checks.check_causal_linear_attention(reference) is True
    assert "passes all 4 checks" in capsys.readouterr().out
    for wrong, named in [
        (not_causal, "one chunk"),
        (forgets_earlier_chunks, "four chunks: carry the sums"),
        (excludes_itself, "one chunk"),
        (softmax_attention, "one chunk"),
    ]:
        assert checks.check_causal_linear_attention(wrong) is False
        assert named in capsys.readouterr().out
