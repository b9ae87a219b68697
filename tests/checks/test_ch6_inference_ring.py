"""``checks.ch6_inference_ring``: each checker accepts the reference and rejects wrong answers."""

import math

import pytest
import torch

from attention_book import checks

# --- chapter 6: inference ------------------------------------------------------------------


def _repeat_kv(x, n_rep):
    return x.repeat_interleave(n_rep, dim=1)


def test_check_repeat_kv(capsys):
    assert checks.check_repeat_kv(_repeat_kv) is True
    assert checks.check_repeat_kv(
        lambda x, n: x[:, :, None].expand(-1, -1, n, -1, -1).flatten(1, 2)
    )
    for wrong, named in [
        (lambda x, n: x.repeat(1, n, 1, 1), "two key/value heads for four query heads"),
        (lambda x, n: x.repeat_interleave(n, dim=2), "two key/value heads for four query heads"),
        (lambda x, n: x[:, :, None].expand(-1, -1, n, -1, -1), "x unchanged"),
        (lambda x, n: x, "two key/value heads for four query heads"),
        (lambda x, n: x.repeat_interleave(n, dim=1)[:1], "a batch of two"),
    ]:
        assert checks.check_repeat_kv(wrong) is False
        assert named in capsys.readouterr().out


def _gqa(q, k, v):
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    n, m = q.shape[-2], k.shape[-2]
    mask = torch.ones(n, m, dtype=torch.bool).tril(diagonal=m - n)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _gqa_tiled(q, k, v):
    k, v = k.repeat(1, q.shape[1] // k.shape[1], 1, 1), v.repeat(1, q.shape[1] // k.shape[1], 1, 1)
    n, m = q.shape[-2], k.shape[-2]
    mask = torch.ones(n, m, dtype=torch.bool).tril(diagonal=m - n)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _gqa_top_left(q, k, v):  # PyTorch's is_causal aligns the mask to the first key
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def _gqa_not_causal(q, k, v):
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def _gqa_unscaled(q, k, v):
    return _gqa(q * math.sqrt(q.shape[-1]), k, v)


def test_check_grouped_query_attention(capsys):
    assert checks.check_grouped_query_attention(_gqa) is True
    for wrong, named in [
        (_gqa_tiled, "heads 0, 1 read key/value head 0"),
        (_gqa_top_left, "one decoding step"),
        (_gqa_not_causal, "causal multi-head"),
        (_gqa_unscaled, "causal multi-head"),
        (lambda q, k, v: _gqa(q, k, v)[:, :, -1:], "causal multi-head"),
    ]:
        assert checks.check_grouped_query_attention(wrong) is False
        assert named in capsys.readouterr().out


# --- check_ring_step ---------------------------------------------------------------------


def ring_step(out, lse, q, k, v):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    part_lse = torch.logsumexp(s, -1)
    new_lse = torch.logaddexp(lse, part_lse)
    safe = torch.where(torch.isfinite(new_lse), new_lse, torch.zeros_like(new_lse))
    part = torch.softmax(s, -1) @ v
    out = torch.exp(lse - safe)[..., None] * out + torch.exp(part_lse - safe)[..., None] * part
    return out, new_lse


def unscaled(out, lse, q, k, v):  # forgets 1 / sqrt(d)
    return ring_step(out, lse, q * math.sqrt(q.shape[-1]), k, v)


def no_shift(out, lse, q, k, v):  # exp of raw scores: overflows
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weight, total = torch.exp(s), torch.exp(lse)
    new_total = total + weight.sum(-1)
    out = (total[..., None] * out + weight @ v) / new_total[..., None]
    return out, torch.log(new_total)


def adds_outputs(out, lse, q, k, v):  # no reweighting: out + part
    new_out, new_lse = ring_step(torch.zeros_like(out), torch.full_like(lse, -math.inf), q, k, v)
    return out + new_out, torch.logaddexp(lse, new_lse)


def keeps_lse(out, lse, q, k, v):  # merges the outputs but returns the old lse
    new_out, _ = ring_step(out, lse, q, k, v)
    return new_out, torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))


def only_the_new_block(out, lse, q, k, v):  # forgets what came before
    return ring_step(torch.zeros_like(out), torch.full_like(lse, -math.inf), q, k, v)


def two_dims_only(out, lse, q, k, v):  # transposes dims 0 and 1: right for matrices only
    s = q @ k.transpose(0, 1) / math.sqrt(q.shape[-1])
    part_lse = torch.logsumexp(s, -1)
    new_lse = torch.logaddexp(lse, part_lse)
    part = torch.softmax(s, -1) @ v
    out = (
        torch.exp(lse - new_lse)[..., None] * out + torch.exp(part_lse - new_lse)[..., None] * part
    )
    return out, new_lse


def test_check_ring_step_accepts_the_reference(capsys):
    assert checks.check_ring_step(ring_step) is True
    assert "passes all 4 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (unscaled, "the first step"),
        (no_shift, "scores in the thousands"),
        (adds_outputs, "two steps"),
        (keeps_lse, "the first step (out = 0, lse = -inf): attention over one block (lse)"),
        (only_the_new_block, "two steps"),
        (two_dims_only, "batch and head dims"),
        (lambda out, lse, q, k, v: out, "expected a pair (out, lse)"),
    ],
)
def test_check_ring_step_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_ring_step(wrong) is False
    assert named_property in capsys.readouterr().out


# --- check_causal_ring_skips -------------------------------------------------------------


def skips(world_size):
    return [(r, s) for r in range(world_size) for s in range(world_size) if s > r]


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (lambda p: [(r, s) for r in range(p) for s in range(p) if s >= r], "one rank"),
        (lambda p: [(r, s) for r in range(p) for s in range(p) if s < r], "two ranks"),
        (lambda p: [(r, s) for r in range(p) for s in range(p) if (r - s) % p < r], "two ranks"),
        (lambda p: [(s, r) for r in range(p) for s in range(p) if s > r], "two ranks"),
        (lambda p: [(r, s) for r in range(p) for s in range(1, p) if s > r][:2], "four ranks"),
        (lambda p: p * (p - 1) // 2, "a collection of (rank, step) pairs"),
    ],
)
def test_check_causal_ring_skips(wrong, named_property, capsys):
    assert checks.check_causal_ring_skips(skips) is True
    assert checks.check_causal_ring_skips(lambda p: {(r, s) for r, s in skips(p)}) is True
    capsys.readouterr()
    assert checks.check_causal_ring_skips(wrong) is False
    assert named_property in capsys.readouterr().out


@pytest.mark.parametrize("checker", [checks.check_ring_step, checks.check_causal_ring_skips])
def test_ring_checkers_reject_non_functions(checker):
    with pytest.raises(TypeError, match="must be a function"):
        checker(3)
