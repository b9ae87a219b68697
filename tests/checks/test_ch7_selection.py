"""``checks.ch7_selection``: the checkers accept the reference and reject wrong answers."""

import math

import pytest
import torch

from attention_book import checks, modern


def block_scores(q, k, block_size):
    n, d = q.shape
    nb, nq = n // block_size, -(-n // block_size)
    kc = k[: nb * block_size].reshape(nb, block_size, d).mean(1)
    logits = q @ kc.T / math.sqrt(d)
    qblock = torch.arange(n) // block_size
    allowed = torch.arange(nb) < qblock[:, None]
    p = torch.softmax(logits.masked_fill(~allowed, -math.inf), -1).nan_to_num(0.0)
    scores = torch.zeros(nq, nb, dtype=q.dtype).index_add_(0, qblock, p)
    return scores.masked_fill(~(torch.arange(nb) < torch.arange(nq)[:, None]), -math.inf)


def package_scores(q, k, block_size):
    return modern.block_scores(q[None, None], k[None, None], block_size)[0, 0]


def with_current_block(q, k, block_size):  # allows b <= query block: the future leaks in
    n, d = q.shape
    nb, nq = n // block_size, -(-n // block_size)
    kc = k[: nb * block_size].reshape(nb, block_size, d).mean(1)
    qblock = torch.arange(n) // block_size
    allowed = torch.arange(nb) <= qblock[:, None]
    p = torch.softmax((q @ kc.T / math.sqrt(d)).masked_fill(~allowed, -math.inf), -1)
    scores = torch.zeros(nq, nb, dtype=q.dtype).index_add_(0, qblock, p.nan_to_num(0.0))
    return scores.masked_fill(~(torch.arange(nb) <= torch.arange(nq)[:, None]), -math.inf)


def unscaled(q, k, block_size):
    return block_scores(q * math.sqrt(q.shape[1]), k, block_size)


def max_pooled(q, k, block_size):
    n, d = q.shape
    nb = n // block_size
    kc = k[: nb * block_size].reshape(nb, block_size, d).amax(1, keepdim=True)
    pooled = kc.expand(nb, block_size, d).reshape(nb * block_size, d)
    return block_scores(q, torch.cat([pooled, k[nb * block_size :]]), block_size)


def raw_logits(q, k, block_size):  # sums logits, not probabilities
    n, d = q.shape
    nb, nq = n // block_size, -(-n // block_size)
    kc = k[: nb * block_size].reshape(nb, block_size, d).mean(1)
    qblock = torch.arange(n) // block_size
    scores = torch.zeros(nq, nb, dtype=q.dtype).index_add_(0, qblock, q @ kc.T / math.sqrt(d))
    return scores.masked_fill(~(torch.arange(nb) < torch.arange(nq)[:, None]), -math.inf)


def partial_block_counted(q, k, block_size):  # pads the last keys into a block of its own
    n = q.shape[0]
    if n % block_size == 0:
        return block_scores(q, k, block_size)
    pad = block_size - n % block_size
    kp = torch.cat([k, k[-1:].expand(pad, -1)])
    qp = torch.cat([q, q[-1:].expand(pad, -1)])
    return block_scores(qp, kp, block_size)[:, : n // block_size + 1][: -(-n // block_size)]


def test_block_scores_accepts_the_reference_and_the_package(capsys):
    assert checks.check_block_scores(block_scores)
    assert checks.check_block_scores(package_scores)
    assert "passes all 5 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "prop"),
    [
        (with_current_block, "query block 1 can only choose block 0"),
        (unscaled, "three blocks: a query block sums"),
        (max_pooled, "three blocks: a query block sums"),
        (raw_logits, "two blocks of 4"),
        (partial_block_counted, "N not a multiple"),
    ],
)
def test_block_scores_rejects(wrong, prop, capsys):
    assert not checks.check_block_scores(wrong)
    assert prop in capsys.readouterr().out


def topk_block_mask(scores, n, block_size, top_k, window):
    i = torch.arange(n)
    mask = (i[None] <= i[:, None]) & (i[None] >= i[:, None] - window)
    value, index = scores.topk(top_k, -1)
    chosen = torch.zeros(scores.shape[0], scores.shape[1] + 1, dtype=torch.bool)
    chosen.scatter_(1, index.masked_fill(value == -math.inf, scores.shape[1]), True)
    per_key = chosen[:, :-1].repeat_interleave(block_size, 1)  # (nq, nb * bs)
    per_key = torch.nn.functional.pad(per_key, (0, n - per_key.shape[1]))
    return mask | per_key[i // block_size]


def inf_blocks_kept(scores, n, block_size, top_k, window):  # non-causal: takes -inf picks
    return topk_block_mask(scores.nan_to_num(neginf=-1e9), n, block_size, top_k, window)


def no_window(scores, n, block_size, top_k, window):
    i = torch.arange(n)
    return topk_block_mask(scores, n, block_size, top_k, 0) & ~(
        (i[None] < i[:, None]) & (i[None] >= i[:, None] - window)
    ) | (i[None] == i[:, None])


def window_one_short(scores, n, block_size, top_k, window):
    return (
        topk_block_mask(scores, n, block_size, top_k, max(window - 1, 0))
        | torch.eye(n, dtype=torch.bool)
        if window > 0
        else topk_block_mask(scores, n, block_size, top_k, 0) & ~torch.eye(n, dtype=torch.bool)
    )


def block_off_by_one(scores, n, block_size, top_k, window):
    i = torch.arange(n)
    shifted = torch.cat([scores[:1], scores[:-1]])  # query block (i // bs) - 1's choice
    return topk_block_mask(shifted, n, block_size, top_k, window) & (i[None] <= i[:, None])


def topk_over_tokens(scores, n, block_size, top_k, window):
    i = torch.arange(n)
    mask = (i[None] <= i[:, None]) & (i[None] >= i[:, None] - window)
    per_key = scores.repeat_interleave(block_size, 1)[i // block_size]  # (n, nb * bs)
    value, index = per_key.topk(top_k, -1)  # top_k keys, not top_k blocks
    picked = torch.zeros(n, n + 1, dtype=torch.bool)
    picked.scatter_(1, index.masked_fill(value == -math.inf, n), True)
    return mask | picked[:, :n]


def test_topk_block_mask_accepts_the_reference(capsys):
    assert checks.check_topk_block_mask(topk_block_mask)
    assert "passes all 6 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "prop"),
    [
        (inf_blocks_kept, "window 0: each query sees itself"),
        (no_window, "window 1: the query and the position before it"),
        (window_one_short, "window 0: each query sees itself"),
        (block_off_by_one, "window 0: each query sees itself"),
        (topk_over_tokens, "window 0: each query sees itself"),
    ],
)
def test_topk_block_mask_rejects(wrong, prop, capsys):
    assert not checks.check_topk_block_mask(wrong)
    assert prop in capsys.readouterr().out


def test_the_mask_checker_agrees_with_the_package():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 22, 3, generator=gen), torch.randn(1, 1, 22, 3, generator=gen)
    scores = modern.block_scores(q, k, 4)[0, 0]
    want = modern.topk_block_mask(q, k, 4, 2, 3)[0, 0]
    assert torch.equal(topk_block_mask(scores, 22, 4, 2, 3), want)
