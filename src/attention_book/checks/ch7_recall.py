"""Checkers for chapter 7's recall page (7.6): a layer's state bytes and the recall targets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._harness import _call, _expect, _require_callable, _run

__all__ = ["check_mqar_targets", "check_state_bytes"]

_RECURRENT = ("linear", "gated", "delta", "gated_delta")


def _reference_state_bytes(
    kind: str, num_heads: int, head_dim: int, length: int, window: int, bytes_per_number: int
) -> int:
    if kind == "softmax":
        kept = 2 * head_dim * length
    elif kind == "window":
        kept = 2 * head_dim * min(window, length)
    else:
        kept = head_dim * head_dim
    return num_heads * kept * bytes_per_number


def check_state_bytes(fn: Callable[..., Any]) -> bool:
    """Check ``fn(kind, num_heads, head_dim, length, window, bytes_per_number)``.

    The bytes one layer keeps for one sequence after ``length`` positions: ``"softmax"``
    caches a key and a value of ``head_dim`` numbers per head and position, ``"window"`` the
    same for at most ``window`` positions, and a recurrent kind (``"linear"``, ``"gated"``,
    ``"delta"``, ``"gated_delta"``) one ``head_dim x head_dim`` state per head, whatever the
    length; ``window`` is ignored by every kind but ``"window"``.

    Args:
        fn: takes a kind (str) and five ints; returns an int.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-fixed-state-recall`.
    """
    _require_callable("fn", fn)
    names = ("kind", "num_heads", "head_dim", "length", "window", "bytes_per_number")

    def matches(values: tuple[Any, ...], prop: str) -> Callable[[], None]:
        def check() -> None:
            args = dict(zip(names, values, strict=True))
            want = _reference_state_bytes(*values)
            got = _call(fn, args, prop)
            ok = isinstance(got, (int, float)) and not isinstance(got, bool) and got == want
            _expect(ok, prop, args, want, got)

        return check

    return _run(
        "state_bytes",
        [
            matches(("softmax", 1, 1, 1, 1, 1), "softmax, one head of size 1, one position"),
            matches(("softmax", 4, 8, 100, 16, 4), "softmax keeps a key and a value per position"),
            matches(("window", 4, 8, 100, 16, 4), "a window keeps its last window positions"),
            matches(("window", 2, 8, 10, 16, 2), "a window longer than the sequence keeps it all"),
            matches(("linear", 4, 8, 100, 16, 4), "linear: one head_dim x head_dim state per head"),
            matches(("delta", 2, 16, 5, 16, 2), "delta: the state does not depend on the length"),
            matches(("gated", 3, 6, 1000, 16, 4), "gated: the same state, 1000 positions"),
            matches(("gated_delta", 1, 32, 7, 4, 8), "gated_delta: one head of 32, 8 bytes"),
        ],
    )


def _reference_mqar_targets(tokens: torch.Tensor, num_pairs: int) -> torch.Tensor:
    targets = torch.full_like(tokens, -100)
    value_of = {int(tokens[2 * i]): int(tokens[2 * i + 1]) for i in range(num_pairs)}
    for p in range(2 * num_pairs, tokens.shape[0]):
        token = int(tokens[p])
        if token in value_of:
            targets[p] = value_of[token]
    return targets


def check_mqar_targets(fn: Callable[..., Any]) -> bool:
    """Check ``fn(tokens, num_pairs)``: the targets of one recall sequence.

    ``tokens`` (a 1-D int64 tensor) starts with ``num_pairs`` pairs ``key value``, then
    holds queries (keys of those pairs) and padding (0, which is never a key). The target at
    a query is the value paired with its key; every other target is -100.

    Args:
        fn: takes ``(tokens, num_pairs)``; returns a 1-D int tensor of the same length.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-fixed-state-recall`.
    """
    _require_callable("fn", fn)

    def matches(tokens: list[int], num_pairs: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            seq = torch.tensor(tokens, dtype=torch.long)
            args = {"tokens": seq.clone(), "num_pairs": num_pairs}
            want = _reference_mqar_targets(seq, num_pairs)
            got = _call(fn, args, prop)
            ok = (
                isinstance(got, torch.Tensor)
                and got.shape == want.shape
                and not got.is_floating_point()
                and torch.equal(got.long(), want)
            )
            shown = got.tolist() if isinstance(got, torch.Tensor) else got
            _expect(ok, prop, args, want.tolist(), shown)

        return check

    return _run(
        "mqar_targets",
        [
            matches([1, 9, 1], 1, "one pair, one query"),
            matches([1, 9, 2, 8, 2, 1, 0, 0], 2, "two queries in the other order, then padding"),
            matches([3, 7, 1, 7, 2, 9, 1, 3, 2], 3, "two keys share a value; every key asked"),
            matches([6, 4, 4, 5, 4, 6, 0], 2, "a value equal to another key is no key"),
            matches([2, 9, 5, 6, 5, 0, 0, 0], 2, "one of two keys asked, then padding"),
        ],
    )
