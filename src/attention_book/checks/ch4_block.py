"""Checkers for chapter 4's block: sinusoidal positions, RoPE (4.1), layer norm (4.2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ._harness import (
    _array,
    _call,
    _close,
    _copy,
    _expect,
    _randn,
    _require_callable,
    _run,
)

__all__ = ["check_layer_norm", "check_rope", "check_sinusoidal_positions"]


def _reference_sinusoidal(n: int, d: int) -> np.ndarray:
    angle = np.arange(n)[:, None] * 10000.0 ** (-np.arange(0, d, 2) / d)  # (n, d/2)
    codes = np.zeros((n, d))
    codes[:, 0::2], codes[:, 1::2] = np.sin(angle), np.cos(angle)
    return codes


def check_sinusoidal_positions(fn: Callable[..., Any]) -> bool:
    """Check ``fn(n, d)``, the sinusoidal position codes of the original Transformer.

    Row ``p`` must hold ``sin(p / 10000^(2i/d))`` in column ``2i`` and ``cos`` of the same
    angle in column ``2i + 1``.

    Args:
        fn: takes the number of positions ``n`` and the (even) code size ``d``; returns an
            ``(n, d)`` tensor.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-positions`.
    """
    _require_callable("fn", fn)

    def run(n: int, d: int, prop: str) -> tuple[dict[str, Any], np.ndarray]:
        args = {"n": n, "d": d}
        return args, _array(_call(fn, args, prop), "the codes", prop, args)

    def shape() -> None:
        prop = "shape (n, d): one code of size d per position"
        args, out = run(6, 8, prop)
        _expect(out.shape == (6, 8), prop, args, "shape (6, 8)", f"shape {out.shape}")

    def position_zero() -> None:
        prop = "position 0: sin 0 = 0 in the even columns, cos 0 = 1 in the odd ones"
        args, out = run(6, 8, prop)
        want = _reference_sinusoidal(6, 8)[0]
        _expect(_close(out[0], want, 1e-5), prop, args, want, out[0])

    def first_pair() -> None:
        prop = "columns 0 and 1 are sin(p) and cos(p): the fastest pair turns 1 radian a step"
        args, out = run(6, 8, prop)
        want = _reference_sinusoidal(6, 8)[:, :2]
        _expect(_close(out[:, :2], want, 1e-5), prop, args, want, out[:, :2])

    def matches(n: int, d: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args, out = run(n, d, prop)
            want = _reference_sinusoidal(n, d)
            _expect(_close(out, want, 1e-5), prop, args, want, out)

        return check

    return _run(
        "sinusoidal_positions",
        [
            shape,
            position_zero,
            first_pair,
            matches(12, 16, "pair i turns at the frequency 10000^(-2i/d) (n = 12, d = 16)"),
            matches(5, 4, "another size: n = 5, d = 4"),
        ],
    )


def _reference_rope(x: torch.Tensor, base: float) -> torch.Tensor:
    n, d = x.shape[-2], x.shape[-1]
    angle = torch.arange(n, dtype=x.dtype)[:, None] * base ** (
        -torch.arange(0, d, 2, dtype=x.dtype) / d
    )
    cos, sin = angle.cos(), angle.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


def check_rope(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, base)``, the rotary position embedding (RoPE) of a sequence.

    Row ``p`` of ``x`` is the vector at position ``p``; each of its feature pairs
    ``(2i, 2i + 1)`` must be rotated counter-clockwise by the angle ``p * base^(-2i/d)``.

    Args:
        fn: takes ``x`` ``(..., N, d)`` with ``d`` even and a float ``base``; returns the
            rotated tensor, the shape of ``x``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-positions`.
    """
    _require_callable("fn", fn)
    x = _randn(5, 8, seed=11)

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, {k: _copy(v) for k, v in args.items()}, prop), "x", prop, args)

    def shape() -> None:
        args = {"x": x, "base": 10000.0}
        prop = "the output has the shape of x"
        out = run(args, prop)
        _expect(out.shape == (5, 8), prop, args, "shape (5, 8)", f"shape {out.shape}")

    def position_zero() -> None:
        args = {"x": x, "base": 10000.0}
        prop = "position 0 is rotated by angle 0: row 0 is unchanged"
        out = run(args, prop)
        _expect(_close(out[0], x[0].numpy()), prop, args, x[0], out[0])

    def keeps_lengths() -> None:
        args = {"x": x, "base": 10000.0}
        prop = "a rotation keeps the length of every feature pair (2i, 2i+1)"
        out = run(args, prop)
        want = np.hypot(x[:, 0::2].numpy(), x[:, 1::2].numpy())
        got = np.hypot(out[:, 0::2], out[:, 1::2]) if out.shape == (5, 8) else out
        _expect(_close(got, want), prop, args, want, got)

    def first_pair() -> None:
        unit = torch.zeros(2, 8, dtype=torch.float64)
        unit[:, 0] = 1.0
        args = {"x": unit, "base": 10000.0}
        prop = (
            "position 1 turns the pair (x0, x1) = (1, 0) by +1 radian, to (cos 1, sin 1): "
            "the pairs are neighbours (2i, 2i+1) and the rotation is counter-clockwise"
        )
        out = run(args, prop)
        want = _reference_rope(unit, 10000.0).numpy()
        _expect(_close(out, want), prop, args, want[1], out[1] if out.shape == want.shape else out)

    def matches(prop: str, shape: tuple[int, ...], base: float, seed: int) -> Callable[[], None]:
        def check() -> None:
            data = _randn(*shape, seed=seed)
            args = {"x": data, "base": base}
            want = _reference_rope(data, base).numpy()
            out = run(args, prop)
            _expect(_close(out, want), prop, args, want, out)

        return check

    def relative() -> None:
        q = _randn(8, seed=12).expand(6, 8)
        args = {"x": q, "base": 10000.0}
        prop = "scores depend on the offset only: rotated q(p) . q(p + 2) is the same for every p"
        out = run(args, prop)
        dots = (out[:-2] * out[2:]).sum(-1) if out.shape == (6, 8) else out
        _expect(np.allclose(dots, dots[0]), prop, args, f"all equal to {dots[0]:.4f}", dots)

    return _run(
        "rope",
        [
            shape,
            position_zero,
            keeps_lengths,
            first_pair,
            matches("pair i turns by p * base^(-2i/d) at position p", (5, 8), 10000.0, 13),
            relative,
            matches("batch dimensions in front: x of shape (2, 3, 6, 4)", (2, 3, 6, 4), 1e4, 14),
            matches("the base is an argument: base = 100", (5, 8), 100.0, 15),
        ],
    )


def check_layer_norm(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, weight, bias, eps)``, layer normalisation over the last dimension.

    Each vector ``x[..., :]`` is shifted to mean 0 and scaled to variance 1 (the biased
    variance, with ``eps`` added under the square root), then multiplied by ``weight`` and
    shifted by ``bias``, as ``torch.nn.functional.layer_norm`` does.

    Args:
        fn: takes ``x`` ``(..., d)``, ``weight`` and ``bias`` ``(d,)`` and a float ``eps``;
            returns a tensor of the shape of ``x``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-transformer-block`.
    """
    _require_callable("fn", fn)
    x = _randn(2, 3, 4, seed=21) * 3.0 + 1.0
    ones, zeros = torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    weight, bias = _randn(4, seed=22), _randn(4, seed=23)

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        out = _call(fn, {k: _copy(v) for k, v in args.items()}, prop)
        return _array(out, "the output", prop, args)

    def reference(args: dict[str, Any]) -> np.ndarray:
        out = nn.functional.layer_norm(
            args["x"], args["x"].shape[-1:], args["weight"], args["bias"], args["eps"]
        )
        result: np.ndarray = out.numpy()
        return result

    def shape() -> None:
        args = {"x": x, "weight": ones, "bias": zeros, "eps": 1e-5}
        prop = "the output has the shape of x"
        out = run(args, prop)
        _expect(out.shape == (2, 3, 4), prop, args, "shape (2, 3, 4)", f"shape {out.shape}")

    def normalised() -> None:
        args = {"x": x, "weight": ones, "bias": zeros, "eps": 1e-5}
        prop = "with weight 1 and bias 0, every vector x[b, n, :] gets mean 0"
        out = run(args, prop)
        means = out.mean(-1) if out.shape == (2, 3, 4) else out
        _expect(np.allclose(means, 0, atol=1e-6), prop, args, "all means 0", means)

    def matches(prop: str, args: dict[str, Any]) -> Callable[[], None]:
        def check() -> None:
            want = reference(args)
            out = run(args, prop)
            _expect(_close(out, want, 1e-6), prop, args, want, out)

        return check

    flat = torch.tensor([[1.0, 1.001, 0.999, 1.0]], dtype=torch.float64)
    constant = torch.full((1, 4), 7.0, dtype=torch.float64)
    return _run(
        "layer_norm",
        [
            shape,
            normalised,
            matches(
                "variance 1 with the biased variance (divide by d, not d - 1); here eps = 0",
                {"x": x, "weight": ones, "bias": zeros, "eps": 0.0},
            ),
            matches(
                "then times weight, plus bias",
                {"x": x, "weight": weight, "bias": bias, "eps": 0.0},
            ),
            matches(
                "eps goes under the square root: (x - mean) / sqrt(var + eps)",
                {"x": flat, "weight": ones, "bias": zeros, "eps": 1e-4},
            ),
            matches(
                "a constant vector becomes the bias, not nan",
                {"x": constant, "weight": weight, "bias": bias, "eps": 1e-5},
            ),
        ],
    )
