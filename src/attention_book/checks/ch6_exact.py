"""Checkers for chapter 6's exact attention: FLOPs, memory (6.1), the online softmax, backward."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._harness import (
    _array,
    _call,
    _close,
    _copy,
    _expect,
    _Failure,
    _pair,
    _randn,
    _require_callable,
    _run,
)

__all__ = [
    "check_attention_backward",
    "check_attention_flops",
    "check_max_tokens",
    "check_merge_partial_attention",
    "check_online_softmax",
]


def check_attention_flops(fn: Callable[..., Any]) -> bool:
    """Check ``fn(n, m, d, d_v)``, the FLOPs of the two matrix products of attention.

    A multiply-add counts as two FLOPs, as PyTorch's ``FlopCounterMode`` counts them: the
    scores ``QK^T`` and the output ``AV`` for ``n`` queries, ``m`` keys, key size ``d`` and
    value size ``d_v``; the softmax is not counted.

    Args:
        fn: takes four positive ints; returns a number.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-quadratic-wall`.
    """
    _require_callable("fn", fn)
    from torch.utils.flop_counter import FlopCounterMode

    def counted(n: int, m: int, d: int, d_v: int) -> int:
        q, k, v = torch.zeros(n, d), torch.zeros(m, d), torch.zeros(m, d_v)
        with FlopCounterMode(display=False) as counter:
            torch.softmax(q @ k.T, dim=-1) @ v
        return int(counter.get_total_flops())

    def matches(n: int, m: int, d: int, d_v: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"n": n, "m": m, "d": d, "d_v": d_v}
            want = counted(n, m, d, d_v)
            got = _call(fn, args, prop)
            ok = isinstance(got, (int, float, np.integer, np.floating)) and got == want
            _expect(ok, prop, args, want, got)

        return check

    return _run(
        "attention_flops",
        [
            matches(1, 1, 1, 1, "one query, one key, one feature: a multiply-add is 2 FLOPs"),
            matches(8, 8, 4, 4, "self-attention, d_v = d: 4 * n * m * d"),
            matches(3, 5, 4, 4, "cross-attention: n queries and m keys differ"),
            matches(4, 6, 8, 2, "the values have their own size d_v"),
            matches(4096, 4096, 64, 64, "N = 4096, d = 64: about 4.3 GFLOP"),
        ],
    )


def check_max_tokens(fn: Callable[..., Any]) -> bool:
    """Check ``fn(memory_bytes, heads, bytes_per_element)``: the longest sequence that fits.

    The answer is the largest integer ``N`` with ``heads * N * N * bytes_per_element``
    at most ``memory_bytes``: the weights of one attention layer for one sequence.

    Args:
        fn: takes three positive ints; returns an int.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-quadratic-wall`.
    """
    _require_callable("fn", fn)

    def matches(memory: int, heads: int, size: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"memory_bytes": memory, "heads": heads, "bytes_per_element": size}
            want = math.isqrt(memory // (heads * size))
            got = _call(fn, args, prop)
            ok = isinstance(got, (int, np.integer)) and not isinstance(got, bool) and got == want
            _expect(ok, prop, args, f"{want} (an int)", got)

        return check

    gib = 2**30
    return _run(
        "max_tokens",
        [
            matches(16 * gib, 8, 4, "16 GiB, 8 heads, float32"),
            matches(80 * gib, 32, 2, "80 GiB, 32 heads, 16-bit floats"),
            matches(64 * 64 * 4 * 2, 2, 4, "an exact fit: N * N * heads * bytes == memory"),
            matches(64 * 64 * 4 * 2 - 1, 2, 4, "one byte short of N = 64 leaves N = 63"),
            matches(300, 1, 1, "round down: sqrt(300) = 17.3 gives 17"),
            matches(3 * 240, 3, 1, "round down, never up: sqrt(240) = 15.49 gives 15"),
            matches(10**16 - 1, 1, 1, "exact for huge numbers: math.sqrt rounds 1e16 - 1 up"),
        ],
    )


def check_online_softmax(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, block_size)``: the max and the softmax normaliser, one block at a time.

    The function reads the last dimension of ``x`` in blocks of ``block_size`` entries and
    returns ``(m, l)`` with ``m = x.max(-1)`` and ``l = sum(exp(x - m), -1)``, keeping only
    a running max and a running sum (rescaled when the max grows).

    Args:
        fn: takes a tensor ``x`` ``(..., M)`` and an int ``block_size`` > 0; returns
            ``(m, l)``, each ``(...)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-flash-attention`.
    """
    _require_callable("fn", fn)

    def run(args: dict[str, Any], prop: str) -> tuple[np.ndarray, np.ndarray]:
        return _pair(fn, args, prop, ("m", "l"))

    def matches(x: torch.Tensor, block: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"x": x.clone(), "block_size": block}
            m_want = x.amax(-1)
            l_want = torch.exp(x - m_want[..., None]).sum(-1)
            m, l_got = run(args, prop)
            _expect(_close(m, m_want.numpy()), prop + " (the max m)", args, m_want, m)
            _expect(_close(l_got, l_want.numpy()), prop + " (the sum l)", args, l_want, l_got)

        return check

    rising = torch.arange(10, dtype=torch.float64)[None]  # the max grows in every block
    falling = rising.flip(-1)  # the first block holds the max
    return _run(
        "online_softmax",
        [
            matches(_randn(3, 8, seed=11), 8, "one block: the plain max and sum"),
            matches(falling, 3, "max in the first block; later blocks only add"),
            matches(rising, 3, "the max grows in every block: rescale the running sum"),
            matches(_randn(2, 3, 10, seed=12), 4, "batch dims in front; 10 is not a multiple of 4"),
            matches(rising * 100, 2, "scores up to 900 must not overflow"),
            matches(_randn(2, 7, seed=13), 1, "block_size = 1: one score at a time"),
        ],
    )


def check_merge_partial_attention(fn: Callable[..., Any]) -> bool:
    """Check ``fn(out_a, lse_a, out_b, lse_b) -> (out, lse)``: merge attention over two key sets.

    ``out_x`` is the normalised attention output of the queries over one set of keys and
    ``lse_x`` the log of its softmax denominator, ``log sum_j exp(s_j)``; the function returns
    the same pair for the union of the two sets. A set with no keys has ``lse = -inf``.

    Args:
        fn: takes ``out_a (..., N, d_v)``, ``lse_a (..., N)``, ``out_b``, ``lse_b``; returns
            ``(out (..., N, d_v), lse (..., N))``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-flash-attention`.
    """
    _require_callable("fn", fn)
    q, k, v = _randn(2, 4, 3, seed=14), _randn(2, 9, 3, seed=15), _randn(2, 9, 2, seed=16)

    def part(keys: slice, shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        s = q @ k[:, keys].transpose(-2, -1) + shift
        return torch.softmax(s, -1) @ v[:, keys], torch.logsumexp(s, -1)

    def run(args: dict[str, Any], prop: str) -> tuple[np.ndarray, np.ndarray]:
        out = _call(fn, {name: x.clone() for name, x in args.items()}, prop)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _Failure(f"{prop}\n   it returned {type(out).__name__}, expected (out, lse)")
        return _array(out[0], "out", prop, args), _array(out[1], "lse", prop, args)

    def matches(split: int, shift: float, prop: str) -> Callable[[], None]:
        def check() -> None:
            (out_a, lse_a), (out_b, lse_b) = (
                part(slice(0, split), shift),
                part(slice(split, 9), shift),
            )
            want_out, want_lse = part(slice(0, 9), shift)
            args = {"out_a": out_a, "lse_a": lse_a, "out_b": out_b, "lse_b": lse_b}
            out, lse = run(args, prop)
            _expect(_close(out, want_out.numpy()), prop + " (out)", args, want_out, out)
            _expect(_close(lse, want_lse.numpy()), prop + " (lse)", args, want_lse, lse)

        return check

    def empty_part() -> None:
        out_b, lse_b = part(slice(0, 9))
        args = {
            "out_a": torch.zeros_like(out_b),
            "lse_a": torch.full_like(lse_b, -math.inf),
            "out_b": out_b,
            "lse_b": lse_b,
        }
        prop = "a part with no keys (lse = -inf, out = 0) changes nothing"
        out, lse = run(args, prop)
        ok = _close(out, out_b.numpy()) and _close(lse, lse_b.numpy())
        _expect(ok, prop, args, out_b, out)

    return _run(
        "merge_partial_attention",
        [
            matches(4, 0.0, "4 keys + 5 keys: the same as attention over all 9"),
            matches(1, 0.0, "1 key + 8 keys: the parts have very different weights"),
            matches(6, 800.0, "scores around 800: exp overflows unless you subtract a max"),
            empty_part,
        ],
    )


def _reference_attention_backward(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grad_out: torch.Tensor, scale: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The gradients of ``softmax(scale q k^T) v`` by hand, with ``D = rowsum(dO * O)``."""
    p = torch.softmax(scale * q @ k.transpose(-2, -1), dim=-1)  # (..., N, M)
    out = p @ v  # (..., N, d_v)
    dv = p.transpose(-2, -1) @ grad_out  # (..., M, d_v)
    dp = grad_out @ v.transpose(-2, -1)  # (..., N, M)
    ds = p * (dp - (grad_out * out).sum(-1, keepdim=True))  # (..., N, M)
    return scale * ds @ k, scale * ds.transpose(-2, -1) @ q, dv


def check_attention_backward(fn: Callable[..., Any]) -> bool:
    """Check ``fn(q, k, v, grad_out, scale) -> (dq, dk, dv)``: the backward pass of attention.

    The forward is ``O = softmax(S) V`` with ``S = scale Q K^T``; given ``dO`` (``grad_out``)
    the function returns the gradients of ``sum(dO * O)`` with respect to ``Q``, ``K`` and
    ``V``, computed with full matrices: ``dV = P^T dO``, ``dP = dO V^T``,
    ``dS = P * (dP - D)`` with ``D = rowsum(dO * O)``, ``dQ = scale dS K`` and
    ``dK = scale dS^T Q``. They are compared with PyTorch's autograd.

    Args:
        fn: takes ``q (..., N, d)``, ``k (..., M, d)``, ``v (..., M, d_v)``,
            ``grad_out (..., N, d_v)`` and a float ``scale``; returns
            ``(dq, dk, dv)`` shaped as ``q``, ``k`` and ``v``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-flash-backward`.
    """
    _require_callable("fn", fn)

    def autograd(args: dict[str, Any]) -> list[torch.Tensor]:
        q, k, v = (args[name].clone().requires_grad_(True) for name in ("q", "k", "v"))
        s = args["scale"] * q @ k.transpose(-2, -1)
        out = torch.softmax(s, dim=-1) @ v
        return list(torch.autograd.grad(out, (q, k, v), args["grad_out"]))

    def matches(
        n: int, m: int, d: int, d_v: int, lead: tuple[int, ...], scale: float | None, prop: str
    ) -> Callable[[], None]:
        def check() -> None:
            seed = 17 + n + 3 * m + 5 * d + 7 * d_v + len(lead)
            args: dict[str, Any] = {
                "q": _randn(*lead, n, d, seed=seed),
                "k": _randn(*lead, m, d, seed=seed + 1),
                "v": _randn(*lead, m, d_v, seed=seed + 2),
                "grad_out": _randn(*lead, n, d_v, seed=seed + 3),
                "scale": 1 / math.sqrt(d) if scale is None else scale,
            }
            want = autograd(args)
            out = _call(fn, {name: _copy(x) for name, x in args.items()}, prop)
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise _Failure(
                    f"{prop}\n   it returned {type(out).__name__}, expected (dq, dk, dv)"
                )
            for name, got, expected in zip(("dq", "dk", "dv"), out, want, strict=True):
                got_array = _array(got, name, prop, args)
                ok = _close(got_array, expected.numpy())
                _expect(ok, f"{prop} ({name})", args, expected, got_array)

        return check

    return _run(
        "attention_backward",
        [
            matches(3, 1, 2, 2, (), None, "one key: every weight is 1, so dq = dk = 0"),
            matches(4, 4, 3, 3, (), None, "N = M = 4, d = 3, scale 1 / sqrt(d)"),
            matches(4, 4, 3, 3, (), 0.5, "use the given scale (0.5 here), not 1 / sqrt(d)"),
            matches(3, 5, 4, 2, (), None, "N = 3 queries, M = 5 keys, d = 4, d_v = 2"),
            matches(3, 5, 4, 2, (2, 3), None, "batch and head dims in front: (2, 3, N, d)"),
            matches(4, 6, 3, 2, (2,), 300.0, "scores in the thousands must not overflow"),
        ],
    )
