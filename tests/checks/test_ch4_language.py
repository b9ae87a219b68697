"""``checks.ch4_language``: each checker accepts the reference and rejects wrong answers."""

import math

import pytest
import torch

from attention_book import checks

# --- chapter 4: temperature sampling, prefix matching, attention pooling -----------------


def _sample_next(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _sample_times_temperature(logits, temperature, generator):  # multiplies instead
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits * temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _sample_ignoring_temperature(logits, temperature, generator):
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _sample_global_rng(logits, temperature, generator):  # forgets the generator
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1).squeeze(-1)


def _sample_keepdim(logits, temperature, generator):  # returns (B, 1)
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


def test_check_temperature_sampling_accepts_reference(capsys):
    assert checks.check_temperature_sampling(_sample_next) is True
    assert "passes all 6 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (_sample_times_temperature, "temperature 0.5 sharpens"),
        (_sample_ignoring_temperature, "temperature 0 picks the most likely token"),
        (_sample_global_rng, "the same seed gives the same tokens"),
        (_sample_keepdim, "one token id per row"),
        (lambda logits, t, g: logits.argmax(-1), "temperature 1 draws each token"),
    ],
)
def test_check_temperature_sampling_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_temperature_sampling(wrong) is False
    assert named_property in capsys.readouterr().out


def _prefix_matching(weights, period):
    queries = torch.arange(period + 1, 2 * period + 1)
    return weights[..., queries, queries - period + 1].mean(-1)


def _prefix_duplicate(weights, period):  # the earlier copy itself, not the token after it
    queries = torch.arange(period + 1, 2 * period + 1)
    return weights[..., queries, queries - period].mean(-1)


def _prefix_every_query(weights, period):  # averages the first copy's queries in too
    queries = torch.arange(period - 1, 2 * period + 1)
    return weights[..., queries, (queries - period + 1).clamp(min=0)].mean(-1)


def _prefix_diagonal_sum(weights, period):  # sums instead of averaging
    queries = torch.arange(period + 1, 2 * period + 1)
    return weights[..., queries, queries - period + 1].sum(-1)


def test_check_prefix_matching_score_accepts_reference(capsys):
    assert checks.check_prefix_matching_score(_prefix_matching) is True
    assert "passes all 4 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (_prefix_duplicate, "hand-built heads"),
        (_prefix_every_query, "hand-built heads"),
        (_prefix_diagonal_sum, "hand-built heads"),
        (
            lambda w, period: _prefix_matching(w.reshape(-1, *w.shape[-2:]), period),
            "leading dimensions are kept",
        ),
    ],
)
def test_check_prefix_matching_score_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_prefix_matching_score(wrong) is False
    assert named_property in capsys.readouterr().out


def _attention_pool(states, query, mask):
    scores = states @ query / math.sqrt(states.shape[-1])
    weights = torch.softmax(scores.masked_fill(~mask, -math.inf), dim=-1)
    return (weights.unsqueeze(1) @ states).squeeze(1), weights


def _pool_unscaled(states, query, mask):
    weights = torch.softmax((states @ query).masked_fill(~mask, -math.inf), dim=-1)
    return (weights.unsqueeze(1) @ states).squeeze(1), weights


def _pool_no_mask(states, query, mask):
    weights = torch.softmax(states @ query / math.sqrt(states.shape[-1]), dim=-1)
    return (weights.unsqueeze(1) @ states).squeeze(1), weights


def _pool_wrong_axis(states, query, mask):  # softmax over the batch
    scores = states @ query / math.sqrt(states.shape[-1])
    weights = torch.softmax(scores.masked_fill(~mask, -math.inf), dim=0)
    return (weights.unsqueeze(1) @ states).squeeze(1), weights


def test_check_attention_pooling_accepts_reference(capsys):
    assert checks.check_attention_pooling(_attention_pool) is True
    assert "passes all 4 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (_pool_unscaled, "softmax(states @ query / sqrt(d))"),
        (_pool_no_mask, "0 on padding"),
        (_pool_wrong_axis, "sum to one over its real tokens"),
        (lambda s, q, m: _attention_pool(s, q, m)[0], "expected a pair (pooled, weights)"),
    ],
)
def test_check_attention_pooling_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_attention_pooling(wrong) is False
    assert named_property in capsys.readouterr().out


@pytest.mark.parametrize(
    "checker",
    [
        checks.check_temperature_sampling,
        checks.check_prefix_matching_score,
        checks.check_attention_pooling,
    ],
)
def test_chapter_4_later_checkers_reject_non_functions(checker):
    with pytest.raises(TypeError, match="fn must be a function, got int"):
        checker(3)
