"""Self-checking exercises: call ``check_*`` on your function and read the feedback.

A checker runs your function on small inputs chosen to expose one property at a time and
stops at the first that fails, printing the property's name, the input that showed it,
what was expected and what came back. It never prints a solution. It returns ``True``
when every property holds, so a grader can count passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["check_soft_lookup"]

# Plain symbols that every monospace font has (emoji render as boxes in some browsers).
PASS = "✓"
FAIL = "✗"
TODO = "…"


class _Failure(Exception):
    """One property failed: carries the feedback for the student."""


def _fmt(x: Any, indent: int = 0) -> str:
    text = np.array2string(np.asarray(x), precision=3, suppress_small=True, separator=", ")
    return text.replace("\n", "\n" + " " * indent)


def _call(fn: Callable[..., Any], args: dict[str, Any], prop: str) -> np.ndarray:
    shown = ", ".join(f"{k}={_fmt(v)}" for k, v in args.items())
    try:
        with np.errstate(all="ignore"):  # overflow shows up as nan in the feedback instead
            out = fn(*args.values())
    except NotImplementedError:
        raise
    except Exception as error:  # any crash is feedback, not a stopped notebook
        raise _Failure(
            f"{prop}: calling it raised {type(error).__name__}: {error}\n   input: {shown}"
        ) from None
    try:
        result: np.ndarray = np.asarray(out, dtype=np.float64)
        return result
    except (TypeError, ValueError):
        raise _Failure(
            f"{prop}: it returned {type(out).__name__}, expected an array\n   input: {shown}"
        ) from None


def _expect(ok: bool, prop: str, args: dict[str, Any], expected: Any, got: Any) -> None:
    if not ok:
        shown = "".join(f"\n     {k} = {_fmt(v, indent=8 + len(k))}" for k, v in args.items())
        raise _Failure(
            f"{prop}\n   input:{shown}"
            f"\n   expected: {_fmt(expected, 13)}\n   got:      {_fmt(got, 13)}"
        )


def _run(name: str, checks: list[Callable[[], None]], fn: Callable[..., Any]) -> bool:
    try:
        for check in checks:
            check()
    except NotImplementedError:
        print(f"{TODO} {name} is not implemented yet: replace the `raise NotImplementedError`.")
        return False
    except _Failure as failure:
        print(f"{FAIL} {name} failed a check.\n   property: {failure}")
        return False
    print(f"{PASS} {name} passes all {len(checks)} checks.")
    return True


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
    if not callable(fn):
        raise TypeError(f"fn must be a function, got {type(fn).__name__}")
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=3), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))

    def shape() -> None:
        args = {"query": q, "keys": k, "values": v, "temperature": 1.0}
        out = _call(fn, args, "output shape")
        _expect(
            out.shape == (2,),
            "output shape: one value-sized vector per query",
            args,
            "shape (2,)",
            f"shape {out.shape}",
        )

    def weights_sum_to_one() -> None:
        const = np.tile([[3.0, -1.0]], (5, 1))
        args = {"query": q, "keys": k, "values": const, "temperature": 1.0}
        out = _call(fn, args, "weights sum to one")
        _expect(
            np.allclose(out, [3.0, -1.0]),
            "weights sum to one: when every value is the same, so is the output",
            args,
            [3.0, -1.0],
            out,
        )

    def matches(temperature: float, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"query": q, "keys": k, "values": v, "temperature": temperature}
            out = _call(fn, args, prop)
            want = _reference_lookup(q, k, v, temperature)
            _expect(
                out.shape == want.shape and np.allclose(out, want, atol=1e-6), prop, args, want, out
            )

        return check

    def large_scores() -> None:
        big_q = np.array([30.0, 30.0, 0.0])
        big_k = np.array([[20.0, 20.0, 0.0], [19.0, 20.0, 0.0], [0.0, 0.0, 1.0]])
        small_v = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
        args = {"query": big_q, "keys": big_k, "values": small_v, "temperature": 1.0}
        out = _call(fn, args, "large scores")
        want = _reference_lookup(big_q, big_k, small_v, 1.0)
        _expect(
            out.shape == want.shape
            and bool(np.all(np.isfinite(out)))
            and np.allclose(out, want, atol=1e-6),
            "large scores (around 1200) must not overflow: subtract the largest score "
            "before np.exp",
            args,
            want,
            out,
        )

    checks = [
        shape,
        weights_sum_to_one,
        matches(1.0, "soft average of the values at temperature 1"),
        matches(0.25, "temperature divides the scores (0.25: sharper weights)"),
        matches(4.0, "temperature divides the scores (4: flatter weights)"),
        large_scores,
    ]
    return _run("soft_lookup", checks, fn)
