"""Checkers for chapter 2, the math: softmax (2.2), attention and masks (2.4), heads (2.5)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ._harness import (
    _array,
    _call,
    _close,
    _expect,
    _Failure,
    _pair,
    _randn,
    _require_callable,
    _run,
)

__all__ = [
    "check_causal_mask",
    "check_multihead_attention",
    "check_scaled_dot_product_attention",
    "check_softmax",
]


def check_softmax(fn: Callable[..., Any]) -> bool:
    """Check a PyTorch softmax ``fn(x, dim=-1)``.

    Args:
        fn: takes a floating-point tensor ``x`` and a dimension ``dim``; returns weights of
            the shape of ``x`` that are positive and sum to one along ``dim``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-softmax`.
    """
    _require_callable("fn", fn)
    x = _randn(3, 4, seed=1)

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, args, prop), "the output", prop, args)

    def shape() -> None:
        args = {"x": x.clone(), "dim": -1}
        prop = "output shape: the same as the input"
        out = run(args, prop)
        _expect(out.shape == (3, 4), prop, args, "shape (3, 4)", f"shape {out.shape}")

    def sums_to_one() -> None:
        args = {"x": x.clone(), "dim": -1}
        prop = "weights are positive and sum to one along dim=-1"
        out = run(args, prop)
        ok = bool((out >= 0).all()) and np.allclose(out.sum(-1), 1.0)
        _expect(ok, prop, args, "row sums [1, 1, 1]", f"row sums {out.sum(-1)}")

    def along(dim: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"x": x.clone(), "dim": dim}
            want = torch.softmax(x, dim=dim).numpy()
            out = run(args, prop)
            _expect(_close(out, want), prop, args, want, out)

        return check

    def extreme(values: list[float], prop: str) -> Callable[[], None]:
        def check() -> None:
            big = torch.tensor([values], dtype=torch.float64)
            args = {"x": big, "dim": -1}
            want = torch.softmax(big, dim=-1).numpy()
            out = run(args, prop)
            _expect(_close(out, want) and bool(np.isfinite(out).all()), prop, args, want, out)

        return check

    def leaves_input_alone() -> None:
        given = x.clone()
        args = {"x": given, "dim": -1}
        prop = "the input is left unchanged (no in-place edits of x)"
        run(args, prop)
        _expect(torch.equal(given, x), prop, {"x": x}, x, given)

    return _run(
        "softmax",
        [
            shape,
            sums_to_one,
            along(-1, "matches the softmax along the last dimension"),
            along(0, "dim=0: the weights sum to one down each column"),
            extreme([1000.0, 1001.0, 999.0], "large scores must not overflow to inf/nan"),
            extreme([-1000.0, -1001.0, -999.0], "very negative scores must not give 0/0 = nan"),
            leaves_input_alone,
        ],
    )


def _reference_sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> tuple[np.ndarray, np.ndarray]:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf)
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1))
    return (weights @ v).numpy(), weights.numpy()


def check_scaled_dot_product_attention(fn: Callable[..., Any]) -> bool:
    """Check ``fn(q, k, v, mask=None) -> (output, weights)``, scaled dot-product attention.

    Args:
        fn: takes queries ``(..., N, d)``, keys ``(..., M, d)``, values ``(..., M, d_v)`` and
            an optional boolean mask broadcastable to ``(..., N, M)`` (True = may attend);
            returns the output ``(..., N, d_v)`` and the weights ``(..., N, M)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-masks`.
    """
    _require_callable("fn", fn)
    q, k, v = _randn(3, 4, seed=2), _randn(5, 4, seed=3), _randn(5, 2, seed=4)

    def run(args: dict[str, Any], prop: str) -> tuple[np.ndarray, np.ndarray]:
        return _pair(fn, args, prop, ("output", "weights"))

    def shapes() -> None:
        args = {"q": q, "k": k, "v": v, "mask": None}
        prop = "shapes: output (N, d_v) and weights (N, M) for N=3 queries, M=5 keys"
        out, weights = run(args, prop)
        got = f"output {out.shape}, weights {weights.shape}"
        _expect(
            out.shape == (3, 2) and weights.shape == (3, 5),
            prop,
            args,
            "output (3, 2), weights (3, 5)",
            got,
        )

    def rows_sum_to_one() -> None:
        args = {"q": q, "k": k, "v": v, "mask": None}
        prop = "each query's weights sum to one (softmax over the keys, the last dimension)"
        _, weights = run(args, prop)
        _expect(np.allclose(weights.sum(-1), 1.0), prop, args, "[1, 1, 1]", weights.sum(-1))

    def matches(
        prop: str, shape_q: tuple[int, ...], shape_k: tuple[int, ...], masked: bool = False
    ) -> Callable[[], None]:
        def check() -> None:
            bq, bk = _randn(*shape_q, seed=5), _randn(*shape_k, seed=6)
            bv = _randn(*shape_k[:-1], 3, seed=7)
            mask = None
            if masked:
                n, m = shape_q[-2], shape_k[-2]
                mask = torch.rand(n, m, generator=torch.Generator().manual_seed(8)) < 0.6
                mask[:, 0] = True
            args = {"q": bq, "k": bk, "v": bv, "mask": mask}
            want_out, want_weights = _reference_sdpa(bq, bk, bv, mask)
            out, weights = run(args, prop)
            _expect(_close(weights, want_weights), prop, args, want_weights, weights)
            _expect(_close(out, want_out), prop, args, want_out, out)

        return check

    def no_allowed_key() -> None:
        mask = torch.tensor([[True] * 5, [False] * 5, [True, False, True, False, True]])
        args = {"q": q, "k": k, "v": v, "mask": mask}
        prop = "a query with no allowed key gets zero weights and a zero output, not nan"
        out, weights = run(args, prop)
        ok = bool(np.isfinite(out).all()) and np.allclose(weights[1], 0) and np.allclose(out[1], 0)
        _expect(ok, prop, args, "row 1 of weights and output all 0", weights[1])

    return _run(
        "scaled_dot_product_attention",
        [
            shapes,
            rows_sum_to_one,
            matches("scores are q·k / sqrt(d), with d = 16", (3, 16), (5, 16)),
            matches("batch dimensions in front: (2, 3, N, d)", (2, 3, 4, 8), (2, 3, 6, 8)),
            matches(
                "masked keys get weight 0 and the allowed ones still sum to one",
                (4, 8),
                (6, 8),
                masked=True,
            ),
            no_allowed_key,
        ],
    )


def check_causal_mask(fn: Callable[..., Any]) -> bool:
    """Check ``fn(n, m=None)``, the causal mask: True where query ``i`` may see key ``j``.

    Args:
        fn: takes the number of queries ``n`` and of keys ``m`` (``None`` means ``n``); when
            ``n < m`` the queries are the last ``n`` of ``m`` positions. Returns a boolean
            ``(n, m)`` tensor.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-masks`.
    """
    _require_callable("fn", fn)

    def reference(n: int, m: int) -> np.ndarray:
        return np.tril(np.ones((n, m), dtype=bool), k=m - n)

    def is_bool() -> None:
        args: dict[str, Any] = {"n": 3, "m": None}
        prop = "returns a boolean tensor (True = may attend)"
        out = _call(fn, args, prop)
        dtype = getattr(out, "dtype", type(out).__name__)
        _expect(dtype in (torch.bool, np.bool_), prop, args, "dtype torch.bool", dtype)

    def matches(n: int, m: int | None, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"n": n, "m": m}
            want = reference(n, n if m is None else m)
            out = _array(_call(fn, args, prop), "the mask", prop, args).astype(bool)
            _expect(out.shape == want.shape and bool((out == want).all()), prop, args, want, out)

        return check

    return _run(
        "causal_mask",
        [
            is_bool,
            matches(4, None, "square (n, n) when m is None; query i sees keys 0..i, itself too"),
            matches(1, None, "a single query sees itself"),
            matches(2, 5, "n < m: the queries are the last n positions (2 queries, 5 keys)"),
            matches(3, 3, "m = n given explicitly"),
        ],
    )


def check_multihead_attention(cls: type[nn.Module]) -> bool:
    """Check a multi-head attention module class ``cls(d_model, num_heads)``.

    The module must have four ``nn.Linear(d_model, d_model)`` layers named ``q_proj``,
    ``k_proj``, ``v_proj`` and ``out_proj``, and ``forward(query, key, value, mask=None)``
    returning ``(output (B, N, d_model), weights (B, H, N, M))``. The checker copies the
    weights of a ``torch.nn.MultiheadAttention`` into it and compares the two.

    Args:
        cls: the class (not an instance).

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-multi-head`.
    """
    if not isinstance(cls, type):
        raise TypeError(f"cls must be a class, got {type(cls).__name__}")
    d_model, heads = 8, 2
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(d_model, heads, batch_first=True).double()
    state: dict[str, nn.Module] = {}

    def build() -> None:
        args = {"d_model": d_model, "num_heads": heads}
        prop = "cls(d_model=8, num_heads=2) builds a module with q_proj, k_proj, v_proj, out_proj"
        module = _call(cls, args, prop)
        layers = [
            getattr(module, name, None) for name in ("q_proj", "k_proj", "v_proj", "out_proj")
        ]
        linears = [lin for lin in layers if isinstance(lin, nn.Linear)]
        ok = isinstance(module, nn.Module) and all(
            lin.in_features == lin.out_features == d_model for lin in linears
        )
        _expect(
            ok and len(linears) == 4,
            prop,
            args,
            "an nn.Module with four nn.Linear(8, 8) attributes",
            [type(x).__name__ for x in layers],
        )
        module = module.double()
        with torch.no_grad():
            q_k_v = zip(
                linears[:3],
                reference.in_proj_weight.chunk(3),
                reference.in_proj_bias.chunk(3),
                strict=True,
            )
            for lin, w, b in q_k_v:
                lin.weight.copy_(w)
                if lin.bias is not None:
                    lin.bias.copy_(b)
            linears[3].weight.copy_(reference.out_proj.weight)
            if linears[3].bias is not None:
                linears[3].bias.copy_(reference.out_proj.bias)
        state["module"] = module

    def run(args: dict[str, Any], prop: str) -> tuple[np.ndarray, np.ndarray]:
        out = _call(state["module"], args, prop)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _Failure(f"{prop}\n   forward returned {type(out).__name__}, expected a pair")
        return (
            _array(out[0], "the output", prop, args),
            _array(out[1], "the weights", prop, args),
        )

    x, memory = _randn(2, 3, d_model, seed=9), _randn(2, 5, d_model, seed=10)

    def shapes() -> None:
        args = {"query": x, "key": x, "value": x, "mask": None}
        prop = "shapes: output (B, N, d_model) = (2, 3, 8), weights (B, H, N, M) = (2, 2, 3, 3)"
        out, weights = run(args, prop)
        ok = out.shape == (2, 3, 8) and weights.shape == (2, 2, 3, 3)
        _expect(ok, prop, args, "(2, 3, 8) and (2, 2, 3, 3)", f"{out.shape} and {weights.shape}")

    def matches(prop: str, key: torch.Tensor, mask: torch.Tensor | None) -> Callable[[], None]:
        def check() -> None:
            args = {"query": x, "key": key, "value": key, "mask": mask}
            torch_mask = None if mask is None else ~mask  # PyTorch's module: True = blocked
            with torch.no_grad():
                want, want_weights = reference(
                    x,
                    key,
                    key,
                    attn_mask=torch_mask,
                    need_weights=True,
                    average_attn_weights=False,
                )
            out, weights = run(args, prop)
            _expect(_close(weights, want_weights.numpy(), 1e-5), prop, args, want_weights, weights)
            _expect(_close(out, want.numpy(), 1e-5), prop, args, want, out)

        return check

    def rows_sum_to_one() -> None:
        args = {"query": x, "key": memory, "value": memory, "mask": None}
        prop = "each head's weights sum to one over the keys"
        _, weights = run(args, prop)
        _expect(np.allclose(weights.sum(-1), 1.0), prop, args, "all 1", weights.sum(-1))

    causal = torch.ones(3, 3, dtype=torch.bool).tril()
    return _run(
        "MultiHeadAttention",
        [
            build,
            shapes,
            rows_sum_to_one,
            matches(
                "self-attention equals torch.nn.MultiheadAttention with the same weights", x, None
            ),
            matches("cross-attention: 3 queries attend to 5 keys", memory, None),
            matches("an (N, M) causal mask applies to every sequence and head", x, causal),
        ],
    )
