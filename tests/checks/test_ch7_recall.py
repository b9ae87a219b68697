"""``checks.ch7_recall``: the checker accepts the reference and rejects wrong answers."""

import pytest
import torch

from attention_book import checks, modern

DTYPES = {1: torch.uint8, 2: torch.float16, 4: torch.float32, 8: torch.float64}


def state_bytes(kind, num_heads, head_dim, length, window, nbytes):
    if kind == "softmax":
        return 2 * num_heads * head_dim * length * nbytes
    if kind == "window":
        return 2 * num_heads * head_dim * min(window, length) * nbytes
    return num_heads * head_dim**2 * nbytes


def package_version(kind, num_heads, head_dim, length, window, nbytes):
    return modern.layer_state_bytes(
        kind,
        num_heads,
        head_dim,
        length,
        window=window if kind == "window" else None,
        dtype=DTYPES[nbytes],
    )


def keys_only(kind, num_heads, head_dim, length, window, nbytes):
    full = state_bytes(kind, num_heads, head_dim, length, window, nbytes)
    return full // 2 if kind in ("softmax", "window") else full


def window_not_capped(kind, num_heads, head_dim, length, window, nbytes):
    if kind == "window":
        return 2 * num_heads * head_dim * window * nbytes
    return state_bytes(kind, num_heads, head_dim, length, window, nbytes)


def state_grows(kind, num_heads, head_dim, length, window, nbytes):
    if kind in ("softmax", "window"):
        return state_bytes(kind, num_heads, head_dim, length, window, nbytes)
    return num_heads * head_dim * length * nbytes  # a vector per position, not a matrix


def state_vector(kind, num_heads, head_dim, length, window, nbytes):
    if kind in ("softmax", "window"):
        return state_bytes(kind, num_heads, head_dim, length, window, nbytes)
    return 2 * num_heads * head_dim * nbytes  # a key and a value, not their outer product


def numbers_not_bytes(kind, num_heads, head_dim, length, window, nbytes):
    return state_bytes(kind, num_heads, head_dim, length, window, 1)


def one_head(kind, num_heads, head_dim, length, window, nbytes):
    return state_bytes(kind, 1, head_dim, length, window, nbytes)


def test_accepts_state_bytes_reference_and_package(capsys):
    assert checks.check_state_bytes(state_bytes)
    assert checks.check_state_bytes(package_version)
    assert "passes all 8 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "fails"),
    [
        (keys_only, "softmax, one head of size 1, one position"),
        (window_not_capped, "a window longer than the sequence keeps it all"),
        (state_grows, "linear: one head_dim x head_dim state per head"),
        (state_vector, "linear: one head_dim x head_dim state per head"),
        (numbers_not_bytes, "softmax keeps a key and a value per position"),
        (one_head, "softmax keeps a key and a value per position"),
    ],
)
def test_rejects_wrong_state_bytes(wrong, fails, capsys):
    assert not checks.check_state_bytes(wrong)
    assert fails in capsys.readouterr().out


def mqar_targets(tokens, num_pairs):
    targets = torch.full_like(tokens, -100)
    pairs = tokens[: 2 * num_pairs].view(num_pairs, 2)
    for p in range(2 * num_pairs, len(tokens)):
        hit = (pairs[:, 0] == tokens[p]).nonzero()
        if len(hit):
            targets[p] = pairs[hit[0, 0], 1]
    return targets


def shifted(tokens, num_pairs):  # the target one position late, as if it were the next input
    targets = mqar_targets(tokens, num_pairs)
    return torch.cat([targets.new_tensor([-100]), targets[:-1]])


def key_not_value(tokens, num_pairs):
    targets = mqar_targets(tokens, num_pairs)
    return torch.where(targets == -100, targets, tokens)


def pairs_in_order(tokens, num_pairs):  # assumes the queries come in the pairs' order
    targets = torch.full_like(tokens, -100)
    values = tokens[1 : 2 * num_pairs : 2]
    for i, p in enumerate(range(2 * num_pairs, len(tokens))):
        if tokens[p] != 0 and i < num_pairs:
            targets[p] = values[i]
    return targets


def padding_targeted(tokens, num_pairs):
    targets = mqar_targets(tokens, num_pairs)
    targets[2 * num_pairs :][tokens[2 * num_pairs :] == 0] = 0
    return targets


def values_searched_too(tokens, num_pairs):  # a token is looked up wherever it appears
    targets = torch.full_like(tokens, -100)
    for p in range(2 * num_pairs, len(tokens)):
        for i in range(0, 2 * num_pairs - 1):
            if tokens[i] == tokens[p]:
                targets[p] = tokens[i + 1]
                break
    return targets


def ignore_minus_one(tokens, num_pairs):
    targets = mqar_targets(tokens, num_pairs)
    return torch.where(targets == -100, -1, targets)


def test_accepts_mqar_reference(capsys):
    assert checks.check_mqar_targets(mqar_targets)
    assert "passes all 5 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "fails"),
    [
        (shifted, "one pair, one query"),
        (key_not_value, "one pair, one query"),
        (pairs_in_order, "two queries in the other order, then padding"),
        (padding_targeted, "two queries in the other order, then padding"),
        (values_searched_too, "a value equal to another key is no key"),
        (ignore_minus_one, "one pair, one query"),
    ],
)
def test_rejects_wrong_mqar_targets(wrong, fails, capsys):
    assert not checks.check_mqar_targets(wrong)
    assert fails in capsys.readouterr().out


def test_checkers_reject_non_callables():
    with pytest.raises(TypeError, match="fn must be a function"):
        checks.check_state_bytes(3)
    with pytest.raises(TypeError, match="fn must be a function"):
        checks.check_mqar_targets("targets")
