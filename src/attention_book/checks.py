"""Self-checking exercises: call ``check_*`` on your function and read the feedback.

A checker runs your code on small inputs chosen to expose one property at a time and stops
at the first that fails, printing the property's name, the input that showed it, what was
expected and what came back. It never prints a solution and never raises because your code
raised: a crash is feedback too. It returns ``True`` when every property holds, so a grader
can count passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "check_causal_mask",
    "check_multihead_attention",
    "check_scaled_dot_product_attention",
    "check_soft_lookup",
    "check_softmax",
]

# Plain symbols that every monospace font has (emoji render as boxes in some browsers).
PASS = "✓"
FAIL = "✗"
TODO = "…"


class _Failure(Exception):
    """One property failed: carries the feedback for the student."""


def _fmt(x: Any, indent: int = 0) -> str:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray) and x.size > 24:
        return f"an array of shape {x.shape}"
    if not isinstance(x, (np.ndarray, list, tuple, float, int, bool)):
        return str(x)
    text = np.array2string(np.asarray(x), precision=3, suppress_small=True, separator=", ")
    return text.replace("\n", "\n" + " " * indent)


def _shown(args: dict[str, Any]) -> str:
    return "".join(f"\n     {k} = {_fmt(v, indent=8 + len(k))}" for k, v in args.items())


def _call(fn: Callable[..., Any], args: dict[str, Any], prop: str) -> Any:
    """Call the student's code; turn any crash into feedback naming the input."""
    try:
        with np.errstate(all="ignore"):  # overflow shows up as nan in the feedback instead
            return fn(*args.values())  # positional: your parameter names are yours
    except NotImplementedError:
        raise
    except Exception as error:  # any crash is feedback, not a stopped notebook
        raise _Failure(
            f"{prop}\n   calling it raised {type(error).__name__}: {error}\n   input:{_shown(args)}"
        ) from None


def _array(out: Any, what: str, prop: str, args: dict[str, Any]) -> np.ndarray:
    """Convert a returned tensor or array to a float64 NumPy array."""
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu()
        out = out.double() if out.dtype != torch.bool else out
        result: np.ndarray = out.numpy()
        return result
    try:
        return np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise _Failure(
            f"{prop}\n   {what} is a {type(out).__name__}, expected a tensor"
            f"\n   input:{_shown(args)}"
        ) from None


def _expect(ok: bool, prop: str, args: dict[str, Any], expected: Any, got: Any) -> None:
    if not ok:
        raise _Failure(
            f"{prop}\n   input:{_shown(args)}"
            f"\n   expected: {_fmt(expected, 13)}\n   got:      {_fmt(got, 13)}"
        )


def _close(got: np.ndarray, want: np.ndarray, atol: float = 1e-6) -> bool:
    return got.shape == want.shape and bool(np.allclose(got, want, atol=atol, rtol=1e-5))


def _run(name: str, checks: list[Callable[[], None]]) -> bool:
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


def _require_callable(name: str, fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be a function, got {type(fn).__name__}")


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- chapter 1 ---------------------------------------------------------------------------


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


# --- chapter 2 ---------------------------------------------------------------------------


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
        out = _call(fn, args, prop)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise _Failure(
                f"{prop}\n   it returned {type(out).__name__}, expected a pair (output, weights)"
            )
        return (
            _array(out[0], "the output", prop, args),
            _array(out[1], "the weights", prop, args),
        )

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
