"""Checkers of 7.5: one delta-rule step and the decay mask."""

from __future__ import annotations

import pytest
import torch

from attention_book import checks, modern


def delta_step(state, k, v, beta, decay):
    return decay * state - beta * decay * torch.outer(state @ k, k) + beta * torch.outer(v, k)


def package_step(state, k, v, beta, decay):
    """One step of modern.delta_rule_attention from the given state."""
    _, new = modern.delta_rule_attention(
        k[None],
        k[None],
        v[None],
        torch.tensor([beta], dtype=k.dtype),
        log_decay=torch.log(torch.tensor([decay], dtype=k.dtype)),
        initial_state=state,
        return_state=True,
    )
    return new


def no_beta_on_write(state, k, v, beta, decay):
    return decay * state - beta * decay * torch.outer(state @ k, k) + torch.outer(v, k)


def erase_on_left(state, k, v, beta, decay):
    eye = torch.eye(k.shape[0], dtype=k.dtype)
    return (eye - beta * torch.outer(k, k)) @ (decay * state) + beta * torch.outer(v, k)


def plain_addition(state, k, v, beta, decay):
    return decay * state + beta * torch.outer(v, k)


def decay_after_write(state, k, v, beta, decay):
    return decay * (state - beta * torch.outer(state @ k, k) + beta * torch.outer(v, k))


def erase_undecayed(state, k, v, beta, decay):
    return decay * state - beta * torch.outer(state @ k, k) + beta * torch.outer(v, k)


def transposed_write(state, k, v, beta, decay):
    return decay * state - beta * decay * torch.outer(state @ k, k) + beta * torch.outer(k, v)


def in_place(state, k, v, beta, decay):
    state.mul_(decay)
    state -= beta * torch.outer(state @ k, k)
    state += beta * torch.outer(v, k)
    return state


def test_check_delta_rule_step_accepts_right_answers(capsys):
    assert checks.check_delta_rule_step(delta_step)
    assert checks.check_delta_rule_step(package_step)
    assert "passes all" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (no_beta_on_write, "with beta = 0 and decay = 1 unchanged"),
        (erase_on_left, "a (d_v, d_k) state"),
        (plain_addition, "one write, no decay (DeltaNet)"),
        (decay_after_write, "returns v for the key k"),
        (erase_undecayed, "returns v for the key k"),
        (transposed_write, "a (d_v, d_k) state"),
        (in_place, "not changed"),
    ],
)
def test_check_delta_rule_step_rejects_wrong_answers(wrong, named, capsys):
    assert not checks.check_delta_rule_step(wrong)
    assert named in capsys.readouterr().out


def decay_mask(log_decay):
    n = log_decay.shape[0]
    seg = log_decay[:, None].expand(n, n).tril(-1).cumsum(0)
    return torch.exp(seg.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), -torch.inf))


def inclusive_cumsum(log_decay):
    c = log_decay.cumsum(0)
    d = c[:, None] - c[None, :] + log_decay[None, :]
    return torch.exp(d).tril()


def not_causal(log_decay):
    c = log_decay.cumsum(0)
    return torch.exp(-(c[:, None] - c[None, :]).abs())


def transposed(log_decay):
    return decay_mask(log_decay).T


def ratio_of_exps(log_decay):
    c = torch.exp(log_decay.cumsum(0))
    return (c[:, None] / c[None, :]).tril()


def exp_then_mask(log_decay):
    c = log_decay.cumsum(0)
    return torch.exp(c[:, None] - c[None, :]) * torch.ones(len(c), len(c)).tril()


def test_check_decay_mask_accepts_right_answers(capsys):
    assert checks.check_decay_mask(decay_mask)
    assert checks.check_decay_mask(modern.decay_mask)
    assert "passes all" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (inclusive_cumsum, "causal: 0 above the diagonal, 1 on it"),
        (not_causal, "no decay: the causal mask of ones"),
        (transposed, "no decay: the causal mask of ones"),
        (ratio_of_exps, "finite and right for 300 steps"),
        (exp_then_mask, "finite and right for 300 steps"),
    ],
)
def test_check_decay_mask_rejects_wrong_answers(wrong, named, capsys):
    assert not checks.check_decay_mask(wrong)
    assert named in capsys.readouterr().out


@pytest.mark.parametrize("checker", [checks.check_delta_rule_step, checks.check_decay_mask])
def test_checkers_need_a_function(checker):
    with pytest.raises(TypeError, match="fn must be a function, got int"):
        checker(3)
