"""Checkers for chapter 1, intuition: a soft lookup (1.1) and kernel regression's widths (1.2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._harness import (
    _array,
    _call,
    _close,
    _expect,
    _require_callable,
    _run,
)

__all__ = ["check_laplace_loo_error", "check_soft_lookup"]


def _reference_lookup(
    query: np.ndarray, keys: np.ndarray, values: np.ndarray, temperature: float
) -> np.ndarray:
    scores = keys @ query / temperature
    weights = np.exp(scores - scores.max())
    output: np.ndarray = (weights / weights.sum()) @ values
    return output


def check_soft_lookup(fn: Callable[..., Any]) -> bool:
    """Check a NumPy soft dictionary lookup ``fn(query, keys, values, temperature)``.

    The function should score every key against the query by a dot product, divide the
    scores by ``temperature``, turn them into weights with a softmax, and return the
    weighted sum of the values.

    Args:
        fn: takes ``query`` ``(d,)``, ``keys`` ``(M, d)``, ``values`` ``(M, d_v)`` and a
            float ``temperature`` > 0; returns the output ``(d_v,)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-soft-lookup`.
    """
    _require_callable("fn", fn)
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=3), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, args, prop), "the output", prop, args)

    def shape() -> None:
        args = {"query": q, "keys": k, "values": v, "temperature": 1.0}
        prop = "output shape: one value-sized vector per query"
        out = run(args, prop)
        _expect(out.shape == (2,), prop, args, "shape (2,)", f"shape {out.shape}")

    def weights_sum_to_one() -> None:
        const = np.tile([[3.0, -1.0]], (5, 1))
        args = {"query": q, "keys": k, "values": const, "temperature": 1.0}
        prop = "weights sum to one: when every value is the same, so is the output"
        out = run(args, prop)
        _expect(_close(out, np.array([3.0, -1.0])), prop, args, [3.0, -1.0], out)

    def matches(temperature: float, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"query": q, "keys": k, "values": v, "temperature": temperature}
            want = _reference_lookup(q, k, v, temperature)
            out = run(args, prop)
            _expect(_close(out, want), prop, args, want, out)

        return check

    def large_scores() -> None:
        big_q = np.array([30.0, 30.0, 0.0])
        big_k = np.array([[20.0, 20.0, 0.0], [19.0, 20.0, 0.0], [0.0, 0.0, 1.0]])
        small_v = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
        args = {"query": big_q, "keys": big_k, "values": small_v, "temperature": 1.0}
        prop = "large scores (around 1200) must not overflow: subtract the largest score first"
        want = _reference_lookup(big_q, big_k, small_v, 1.0)
        out = run(args, prop)
        _expect(_close(out, want), prop, args, want, out)

    return _run(
        "soft_lookup",
        [
            shape,
            weights_sum_to_one,
            matches(1.0, "soft average of the values at temperature 1"),
            matches(0.25, "temperature divides the scores (0.25: sharper weights)"),
            matches(4.0, "temperature divides the scores (4: flatter weights)"),
            large_scores,
        ],
    )


def _reference_laplace_loo(x: torch.Tensor, y: torch.Tensor, width: float) -> float:
    scores = -(x[:, None] - x[None, :]).abs() / width
    scores = scores.masked_fill(torch.eye(len(x), dtype=torch.bool), -torch.inf)
    return ((torch.softmax(scores, dim=-1) @ y - y) ** 2).mean().item()


def check_laplace_loo_error(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, y, width)``: the leave-one-out error of Laplace-kernel regression.

    Each training point ``x_i`` is predicted from all the others, weighted by a softmax of the
    scores ``-|x_i - x_j| / width`` over ``j != i`` (its own key masked); the function returns
    the mean squared error of those predictions against ``y``, as a float.

    Args:
        fn: takes ``x`` and ``y``, 1-D float tensors ``(n,)``, and a float ``width`` > 0;
            returns a float.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-kernel-regression`.
    """
    _require_callable("fn", fn)
    gen = torch.Generator().manual_seed(0)
    x = torch.sort(torch.rand(7, generator=gen, dtype=torch.float64) * 4).values
    y = torch.sin(x) + 0.1 * torch.randn(7, generator=gen, dtype=torch.float64)

    def matches(args: dict[str, Any], prop: str) -> Callable[[], None]:
        def check() -> None:
            want = _reference_laplace_loo(args["x"], args["y"], args["width"])
            got = _call(fn, args, prop)
            try:
                value = float(got)
            except (TypeError, ValueError):
                _expect(False, prop, args, f"a float near {want:.6g}", got)
                return
            _expect(abs(value - want) <= 1e-6 * max(1.0, abs(want)), prop, args, want, value)

        return check

    two = {
        "x": torch.tensor([0.0, 1.0], dtype=torch.float64),
        "y": torch.tensor([1.0, 3.0], dtype=torch.float64),
        "width": 1.0,
    }
    return _run(
        "laplace_loo_error",
        [
            matches(two, "two points: each is predicted by the other alone (error 4)"),
            matches({"x": x, "y": y, "width": 1.0}, "seven points, width 1"),
            matches({"x": x, "y": y, "width": 0.2}, "the width divides the distance (0.2)"),
            matches({"x": x, "y": y, "width": 5.0}, "the width divides the distance (5)"),
            matches(
                {"x": x, "y": y.flip(0), "width": 0.5},
                "the distance is |x_i - x_j|, not squared, and the error is squared",
            ),
        ],
    )
