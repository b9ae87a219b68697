"""``checks.ch3_rnn``: each checker accepts the reference and rejects wrong answers."""

import pytest
import torch

from attention_book import checks

# --- check_additive_score and check_attention_decoder_step (chapter 3) -------------------


def additive_reference(query, keys, W_q, W_k, w):
    hidden = torch.tanh((query @ W_q.T).unsqueeze(-2) + (keys @ W_k.T).unsqueeze(-3))
    return hidden @ w


def additive_no_tanh(query, keys, W_q, W_k, w):
    return ((query @ W_q.T).unsqueeze(-2) + (keys @ W_k.T).unsqueeze(-3)) @ w


def additive_transposed(query, keys, W_q, W_k, w):
    return additive_reference(query, keys, W_q, W_k, w).transpose(-2, -1)


def additive_2d_only(query, keys, W_q, W_k, w):
    hidden = torch.tanh((query @ W_q.T)[:, None, :] + (keys @ W_k.T)[None, :, :])
    return hidden @ w


def additive_tanh_outside(query, keys, W_q, W_k, w):
    return torch.tanh(((query @ W_q.T).unsqueeze(-2) + (keys @ W_k.T).unsqueeze(-3)) @ w)


def test_check_additive_score_accepts_the_reference(capsys):
    assert checks.check_additive_score(additive_reference) is True
    assert "✓ additive_score passes all 5 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (additive_no_tanh, "scores equal w^T tanh(W_q q_i + W_k k_j)"),
        (additive_transposed, "shape: one score per (query, key) pair"),
        (additive_2d_only, "batch dimensions in front"),
        (additive_tanh_outside, "scores equal w^T tanh(W_q q_i + W_k k_j)"),
    ],
)
def test_check_additive_score_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_additive_score(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ additive_score failed a check.") and named_property in out


def decoder_step(cell, score, embedded, hidden, encoder_outputs, mask, *, query="new",
                 use_mask=True, dim=-1, order="after"):  # fmt: skip
    new_hidden = cell(embedded, hidden)
    q = new_hidden if query == "new" else hidden
    scores = score.scores(q[:, None, :], encoder_outputs)[:, 0]
    if use_mask:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=dim)
    context = torch.einsum("bs,bsd->bd", weights, encoder_outputs)
    return new_hidden, context, weights


def step_reference(cell, score, embedded, hidden, encoder_outputs, mask):
    return decoder_step(cell, score, embedded, hidden, encoder_outputs, mask)


def test_check_attention_decoder_step_accepts_the_reference(capsys):
    from attention_book.models.seq2seq import attention_step

    assert checks.check_attention_decoder_step(step_reference) is True
    assert "✓ attention_decoder_step passes all 6 checks" in capsys.readouterr().out
    assert checks.check_attention_decoder_step(attention_step) is True


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (lambda *a: decoder_step(*a, use_mask=False), "padding gets weight 0"),
        (lambda *a: decoder_step(*a, dim=0), "padding gets weight 0"),
        (lambda *a: decoder_step(*a, query="old"), "softmax of the scores of the NEW hidden"),
        (lambda *a: decoder_step(*a)[:2], "expected a triple"),
        (lambda *a: (a[3], *decoder_step(*a)[1:]), "new_hidden: the GRU cell"),
    ],
)
def test_check_attention_decoder_step_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_attention_decoder_step(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ attention_decoder_step failed a check.") and named_property in out


# --- chapter 3: max_path_length ----------------------------------------------------------


def _reference_max_path_length(reach):
    step, connected, layers = reach.int(), reach.clone(), 1
    while True:
        wider = (step @ connected.int()) > 0
        if torch.equal(wider, connected):
            break
        connected, layers = wider, layers + 1
    return layers if (connected & ~torch.eye(len(reach), dtype=torch.bool)).any() else 0


def _only_first_to_last(reach):  # looks at the pair (N - 1, 0) only
    connected, layers = reach.clone(), 1
    while not connected[-1, 0] and layers < len(reach):
        connected, layers = (reach.int() @ connected.int()) > 0, layers + 1
    return layers if connected[-1, 0] else 0


def _off_by_one(reach):  # counts the extra layers, not the layers
    return max(_reference_max_path_length(reach) - 1, 0)


def _never_zero(reach):  # forgets the case with no connected pair
    return max(_reference_max_path_length(reach), 1)


def test_check_max_path_length_accepts_reference(capsys):
    assert checks.check_max_path_length(_reference_max_path_length) is True
    assert "passes all 7 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (_only_first_to_last, "the longest path need not start at the first position"),
        (_off_by_one, "one layer connects every pair"),
        (_never_zero, "no pair i != j is ever connected"),
        (lambda reach: reach.sum(), "one layer connects every pair"),
        (lambda reach: 1 / 0, "raised ZeroDivisionError"),
    ],
)
def test_check_max_path_length_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_max_path_length(wrong) is False
    assert named_property in capsys.readouterr().out
