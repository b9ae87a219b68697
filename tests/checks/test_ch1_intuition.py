"""``checks.ch1_intuition``: each checker accepts the reference and rejects wrong answers."""

import numpy as np
import pytest
import torch

from attention_book import checks


def reference(query, keys, values, temperature=1.0):
    scores = keys @ query / temperature
    weights = np.exp(scores - scores.max())
    return weights / weights.sum() @ values


def no_max_shift(query, keys, values, temperature=1.0):
    weights = np.exp(keys @ query / temperature)
    return weights / weights.sum() @ values


def times_temperature(query, keys, values, temperature=1.0):
    scores = keys @ query * temperature
    weights = np.exp(scores - scores.max())
    return weights / weights.sum() @ values


def unnormalised(query, keys, values, temperature=1.0):
    scores = keys @ query / temperature
    return np.exp(scores - scores.max()) @ values


def hard_lookup(query, keys, values, temperature=1.0):
    return values[np.argmax(keys @ query)]


def returns_weights(query, keys, values, temperature=1.0):
    scores = keys @ query / temperature
    weights = np.exp(scores - scores.max())
    return weights / weights.sum()


def ignores_temperature(query, keys, values, temperature=1.0):
    return reference(query, keys, values)


def softmax_over_values(query, keys, values, temperature=1.0):
    scores = keys @ query / temperature
    weights = np.exp(scores - scores.max())
    return (weights @ values) / (weights @ values).sum()


def crashes(query, keys, values, temperature=1.0):
    return keys @ values  # shapes do not line up


def not_started(query, keys, values, temperature=1.0):
    raise NotImplementedError


def test_accepts_reference(capsys):
    assert checks.check_soft_lookup(reference) is True
    assert "✓ soft_lookup passes all 6 checks" in capsys.readouterr().out


def test_accepts_torch_style_returns(capsys):

    def torch_impl(query, keys, values, temperature=1.0):
        q, k, v = (torch.as_tensor(a) for a in (query, keys, values))
        return torch.softmax(k @ q / temperature, dim=0) @ v

    assert checks.check_soft_lookup(torch_impl) is True


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (no_max_shift, "large scores (around 1200) must not overflow"),
        (times_temperature, "temperature divides the scores (0.25: sharper weights)"),
        (unnormalised, "weights sum to one"),
        (hard_lookup, "soft average of the values at temperature 1"),
        (returns_weights, "output shape"),
        (ignores_temperature, "temperature divides the scores"),
        (softmax_over_values, "weights sum to one"),
        (crashes, "calling it raised ValueError"),
    ],
)
def test_rejects_wrong_implementations(wrong, named_property, capsys):
    assert checks.check_soft_lookup(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ soft_lookup failed a check.")
    assert named_property in out
    assert "query" in out  # the input that showed the failure is named


def test_feedback_never_shows_the_solution(capsys):
    checks.check_soft_lookup(unnormalised)
    out = capsys.readouterr().out
    assert "scores.max()" not in out and "np.exp(" not in out.replace("before np.exp", "")


def test_not_implemented_gets_a_gentle_note(capsys):
    assert checks.check_soft_lookup(not_started) is False
    assert "… soft_lookup is not implemented yet" in capsys.readouterr().out


def test_rejects_a_non_function():
    with pytest.raises(TypeError, match="fn must be a function, got int"):
        checks.check_soft_lookup(3)


# check_laplace_loo_error: the leave-one-out error of Laplace-kernel regression (page 1.2)


def loo(x, y, width):
    scores = -(x[:, None] - x[None, :]).abs() / width
    scores = scores.masked_fill(torch.eye(len(x), dtype=torch.bool), -torch.inf)
    return ((torch.softmax(scores, dim=-1) @ y - y) ** 2).mean().item()


def own_key_kept(x, y, width):
    scores = -(x[:, None] - x[None, :]).abs() / width
    return ((torch.softmax(scores, dim=-1) @ y - y) ** 2).mean().item()


def squared_distance(x, y, width):
    scores = -((x[:, None] - x[None, :]) ** 2) / width
    scores = scores.masked_fill(torch.eye(len(x), dtype=torch.bool), -torch.inf)
    return ((torch.softmax(scores, dim=-1) @ y - y) ** 2).mean().item()


def times_width(x, y, width):
    scores = -(x[:, None] - x[None, :]).abs() * width
    scores = scores.masked_fill(torch.eye(len(x), dtype=torch.bool), -torch.inf)
    return ((torch.softmax(scores, dim=-1) @ y - y) ** 2).mean().item()


def absolute_error(x, y, width):
    scores = -(x[:, None] - x[None, :]).abs() / width
    scores = scores.masked_fill(torch.eye(len(x), dtype=torch.bool), -torch.inf)
    return (torch.softmax(scores, dim=-1) @ y - y).abs().mean().item()


def softmax_over_queries(x, y, width):
    scores = -(x[:, None] - x[None, :]).abs() / width
    scores = scores.masked_fill(torch.eye(len(x), dtype=torch.bool), -torch.inf)
    return ((torch.softmax(scores, dim=0) @ y - y) ** 2).mean().item()


def summed_error(x, y, width):
    return loo(x, y, width) * len(x)


def test_laplace_accepts_reference_and_a_tensor_result(capsys):
    assert checks.check_laplace_loo_error(loo) is True
    assert "✓ laplace_loo_error passes all 5 checks" in capsys.readouterr().out
    as_tensor = lambda x, y, width: torch.tensor(loo(x, y, width))  # noqa: E731
    assert checks.check_laplace_loo_error(as_tensor) is True


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (own_key_kept, "each is predicted by the other alone"),
        (squared_distance, "seven points, width 1"),
        (times_width, "the width divides the distance"),
        (absolute_error, "two points"),
        (softmax_over_queries, "seven points, width 1"),
        (summed_error, "two points"),
    ],
)
def test_laplace_rejects_wrong_implementations(wrong, named_property, capsys):
    assert checks.check_laplace_loo_error(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ laplace_loo_error failed a check.")
    assert named_property in out
