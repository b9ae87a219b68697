"""Checkers for chapter 7's linear attention as a recurrent network (7.5).

One step of the (gated) delta rule, and the decay mask of the state-space duality.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._harness import _array, _call, _close, _copy, _expect, _randn, _require_callable, _run

__all__ = ["check_decay_mask", "check_delta_rule_step"]


def _reference_delta_rule_step(
    state: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: float, decay: float
) -> torch.Tensor:
    eye = torch.eye(k.shape[0], dtype=state.dtype)
    return decay * state @ (eye - beta * torch.outer(k, k)) + beta * torch.outer(v, k)


def _reference_decay_mask(log_decay: torch.Tensor) -> torch.Tensor:
    n = log_decay.shape[0]
    sums = torch.zeros(n, n, dtype=log_decay.dtype)
    for t in range(n):
        for s in range(t):
            sums[t, s] = log_decay[s + 1 : t + 1].sum()
    return torch.where(torch.ones(n, n, dtype=torch.bool).tril(), sums.exp(), 0.0)


def _unit(d: int, seed: int) -> torch.Tensor:
    k = _randn(d, seed=seed)
    unit: torch.Tensor = k / k.norm()
    return unit


def check_delta_rule_step(fn: Callable[..., Any]) -> bool:
    """Check ``fn(state, k, v, beta, decay)``: one step of the gated delta rule.

    ``state`` is ``(d_v, d_k)``, ``k`` a unit key ``(d_k,)``, ``v`` a value ``(d_v,)``,
    ``beta`` in ``[0, 2]`` and ``decay`` in ``(0, 1]`` floats; ``fn`` returns the new state
    ``decay * state (I - beta k kᵀ) + beta v kᵀ`` without changing the state it was given.

    Args:
        fn: the student's step.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-linear-rnn`.
    """
    _require_callable("fn", fn)

    def case(
        d_k: int, d_v: int, beta: float, decay: float, seed: int
    ) -> tuple[dict[str, Any], torch.Tensor]:
        args = {
            "state": _randn(d_v, d_k, seed=seed),
            "k": _unit(d_k, seed + 1),
            "v": _randn(d_v, seed=seed + 2),
            "beta": beta,
            "decay": decay,
        }
        want = _reference_delta_rule_step(**{n: _copy(x) for n, x in args.items()})
        return args, want

    def matches(
        d_k: int, d_v: int, beta: float, decay: float, seed: int, prop: str
    ) -> Callable[[], None]:
        def check() -> None:
            args, want = case(d_k, d_v, beta, decay, seed)
            got = _array(
                _call(fn, {n: _copy(x) for n, x in args.items()}, prop), "the state", prop, args
            )
            _expect(_close(got, want.numpy(), 1e-9), prop, args, want, got)

        return check

    def stores_v() -> None:
        prop = "with beta = 1 the new state returns v for the key k (the old value is replaced)"
        args, _ = case(4, 3, 1.0, 0.7, 5)
        got = _array(
            _call(fn, {n: _copy(x) for n, x in args.items()}, prop), "the state", prop, args
        )
        read = got @ args["k"].numpy()
        _expect(_close(read, args["v"].numpy(), 1e-9), prop, args, args["v"], read)

    def leaves_input() -> None:
        prop = "the state passed in is not changed (no in-place update)"
        args, _ = case(3, 3, 0.5, 0.9, 7)
        given = _copy(args["state"])
        _call(fn, args, prop)
        _expect(torch.equal(args["state"], given), prop, {}, given, args["state"])

    return _run(
        "delta_rule_step",
        [
            matches(3, 2, 0.0, 1.0, 1, "a (d_v, d_k) state; with beta = 0 and decay = 1 unchanged"),
            matches(4, 3, 1.0, 1.0, 2, "shape (d_v, d_k) and one write, no decay (DeltaNet)"),
            stores_v,
            matches(4, 3, 0.5, 1.0, 3, "beta scales both the erase and the write"),
            matches(3, 5, 1.5, 0.6, 4, "the decay multiplies the old state only, before the erase"),
            matches(2, 2, 2.0, 0.3, 6, "a square state with beta = 2 (a reflection)"),
            leaves_input,
        ],
    )


def check_decay_mask(fn: Callable[..., Any]) -> bool:
    """Check ``fn(log_decay)``: the ``(N, N)`` mask of a scalar-gated linear attention.

    ``D[t, s] = exp(log_decay[s+1] + ... + log_decay[t])`` for ``s <= t`` (1 on the diagonal)
    and 0 for ``s > t``, for a 1-D ``log_decay`` of ``N`` entries <= 0; it must stay finite
    when the decays are strong and the sequence long.

    Args:
        fn: the student's mask.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-linear-rnn`.
    """
    _require_callable("fn", fn)

    def matches(log_decay: torch.Tensor, prop: str, atol: float = 1e-9) -> Callable[[], None]:
        def check() -> None:
            args = {"log_decay": log_decay}
            want = _reference_decay_mask(log_decay).numpy()
            got = _array(_call(fn, {"log_decay": log_decay.clone()}, prop), "the mask", prop, args)
            ok = got.shape == want.shape and bool(np.isfinite(got).all())
            _expect(ok and _close(got, want, atol), prop, args, want, got)

        return check

    third = torch.log(torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64))
    ramp = torch.log(torch.tensor([0.9, 0.5, 0.25, 0.8], dtype=torch.float64))
    rand = -_randn(6, seed=3).abs()
    strong = torch.full((300,), -4.0, dtype=torch.float64)
    return _run(
        "decay_mask",
        [
            matches(torch.zeros(4, dtype=torch.float64), "no decay: the causal mask of ones"),
            matches(third, "causal: 0 above the diagonal, 1 on it, 0.5 per step below"),
            matches(ramp, "the decay of step s itself is not applied to what step s writes"),
            matches(rand, "the product a_{s+1} ... a_t for every s <= t (random decays)"),
            matches(strong, "finite and right for 300 steps of strong decay", 1e-12),
        ],
    )
