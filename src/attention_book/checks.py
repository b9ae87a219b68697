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
    "check_additive_score",
    "check_attention_decoder_step",
    "check_attention_flops",
    "check_attention_pooling",
    "check_attention_rollout",
    "check_bert_embeddings",
    "check_box_iou",
    "check_causal_linear_attention",
    "check_causal_mask",
    "check_causal_ring_skips",
    "check_dilated_window_mask",
    "check_doubly_stochastic_penalty",
    "check_grouped_query_attention",
    "check_layer_norm",
    "check_max_path_length",
    "check_max_tokens",
    "check_mean_attention_distance",
    "check_mean_pool",
    "check_merge_partial_attention",
    "check_multihead_attention",
    "check_online_softmax",
    "check_patchify",
    "check_prefix_matching_score",
    "check_repeat_kv",
    "check_ring_step",
    "check_rope",
    "check_scaled_dot_product_attention",
    "check_sinusoidal_positions",
    "check_soft_lookup",
    "check_softmax",
    "check_squeeze_excitation",
    "check_temperature_sampling",
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


def _pair(
    fn: Callable[..., Any], args: dict[str, Any], prop: str, names: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Call ``fn(**args)``, which must return two tensors, and convert both."""
    out = _call(fn, args, prop)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise _Failure(
            f"{prop}\n   it returned {type(out).__name__}, expected a pair ({', '.join(names)})"
        )
    first, second = (_array(o, f"the {n}", prop, args) for o, n in zip(out, names, strict=True))
    return first, second


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


# --- chapter 3: parallelism and path length ----------------------------------------------


def _connectivity(n: int, kind: str) -> torch.Tensor:
    """One layer's connectivity (n, n): True where output i reads input j directly."""
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    if kind == "recurrent step":
        return (j == i) | (j == i - 1)
    if kind == "causal convolution, kernel 3":
        return (j <= i) & (j >= i - 2)
    if kind == "causal attention":
        return j <= i
    if kind == "attention":
        return torch.ones(n, n, dtype=torch.bool)
    if kind == "window of 1 with a global token 0":
        return ((i - j).abs() <= 1) | (i == 0) | (j == 0)
    return i == j  # "identity"


def check_max_path_length(fn: Callable[..., Any]) -> bool:
    """Check ``fn(reach)``, the maximum path length of a stack of layers.

    ``reach`` is one layer's connectivity, a boolean ``(N, N)`` tensor, True where output
    ``i`` reads input ``j`` directly, with a True diagonal. The function returns, over the
    pairs ``i != j`` that some number of stacked layers connects, the largest of the fewest
    layers that connect them, and 0 when no such pair exists.

    Args:
        fn: takes ``reach``; returns an int.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-parallelism`.
    """
    _require_callable("fn", fn)

    def matches(n: int, kind: str, want: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            reach = _connectivity(n, kind)
            args = {"reach": reach}
            full = f"{kind}, N = {n}: {prop}"
            out = _call(fn, {"reach": reach.clone()}, full)
            try:
                got: Any = int(out)
            except (TypeError, ValueError, RuntimeError):
                got = out
            _expect(got == want and not isinstance(out, bool), full, args, want, got)

        return check

    return _run(
        "max_path_length",
        [
            matches(8, "attention", 1, "one layer connects every pair"),
            matches(8, "causal attention", 1, "one layer; pairs j > i are never connected"),
            matches(8, "recurrent step", 7, "one hop per step: N - 1 from the first to the last"),
            matches(9, "causal convolution, kernel 3", 4, "ceil((N - 1) / (k - 1)) layers"),
            matches(
                8,
                "window of 1 with a global token 0",
                2,
                "the longest path need not start at the first position: 2 hops via token 0",
            ),
            matches(5, "identity", 0, "no pair i != j is ever connected: 0"),
            matches(2, "recurrent step", 1, "two positions, one hop"),
        ],
    )


# --- chapter 4 ---------------------------------------------------------------------------


def _reference_bert_embeddings(
    ids: torch.Tensor,
    types: torch.Tensor,
    word: torch.Tensor,
    position: torch.Tensor,
    token_type: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
) -> np.ndarray:
    x = word[ids] + position[torch.arange(ids.shape[1])] + token_type[types]
    return torch.nn.functional.layer_norm(x, x.shape[-1:], gamma, beta, eps=1e-12).numpy()


def check_bert_embeddings(fn: Callable[..., Any]) -> bool:
    """Check ``fn(input_ids, token_type_ids, word, position, token_type, gamma, beta)``.

    BERT's input layer: ``LayerNorm(word[t_i] + position[i] + token_type[s_i])`` over the
    features, with LayerNorm's scale ``gamma``, shift ``beta`` and epsilon ``1e-12``.

    Args:
        fn: takes ``input_ids`` and ``token_type_ids`` ``(B, N)`` (long), the tables ``word``
            ``(V, d)``, ``position`` ``(max_len, d)`` and ``token_type`` ``(2, d)``, and
            ``gamma``, ``beta`` ``(d,)``; returns ``(B, N, d)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-pretrained`.
    """
    _require_callable("fn", fn)
    d, vocab, max_len = 8, 11, 9
    word, position = _randn(vocab, d, seed=20), _randn(max_len, d, seed=21)
    token_type = _randn(2, d, seed=22)
    gamma, beta = 1.0 + 0.1 * _randn(d, seed=23), 0.1 * _randn(d, seed=24)
    gen = torch.Generator().manual_seed(25)
    ids = torch.randint(0, vocab, (2, 5), generator=gen)
    zeros = torch.zeros_like(ids)

    def args_for(ids: torch.Tensor, types: torch.Tensor, **tables: torch.Tensor) -> dict[str, Any]:
        base = {"word": word, "position": position, "token_type": token_type}
        base |= tables
        return {"input_ids": ids, "token_type_ids": types, **base, "gamma": gamma, "beta": beta}

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, args, prop), "the output", prop, args)

    def matches(prop: str, args: dict[str, Any]) -> Callable[[], None]:
        def check() -> None:
            want = _reference_bert_embeddings(*args.values())
            out = run(args, prop)
            _expect(_close(out, want, 1e-6), prop, args, want, out)

        return check

    def shape() -> None:
        args = args_for(ids, zeros)
        prop = "output shape (B, N, d) = (2, 5, 8)"
        out = run(args, prop)
        _expect(out.shape == (2, 5, d), prop, args, "shape (2, 5, 8)", f"shape {out.shape}")

    def positions_count() -> None:
        same = torch.full((1, 4), 3)
        args = args_for(same, torch.zeros_like(same))
        prop = "position i adds row i of the position table: one token repeated differs by place"
        want = _reference_bert_embeddings(*args.values())
        out = run(args, prop)
        _expect(_close(out, want, 1e-6), prop, args, want, out)

    def tiny_variance() -> None:
        flat = torch.zeros(vocab, d, dtype=torch.float64)
        flat[:, 0] = 1e-5  # the features of every token differ by only 1e-5
        args = args_for(
            ids[:1, :3],
            zeros[:1, :3],
            word=flat,
            position=torch.zeros(max_len, d, dtype=torch.float64),
            token_type=torch.zeros(2, d, dtype=torch.float64),
        )
        prop = "LayerNorm's epsilon is 1e-12: features differing by 1e-5 still get unit variance"
        want = _reference_bert_embeddings(*args.values())
        out = run(args, prop)
        _expect(_close(out, want, 1e-4), prop, args, want, out)

    return _run(
        "bert_embeddings",
        [
            shape,
            matches(
                "word + position embeddings, then LayerNorm over the features", args_for(ids, zeros)
            ),
            positions_count,
            matches(
                "token_type_ids pick rows of the segment table (some tokens in segment 1)",
                args_for(ids, torch.tensor([[0, 0, 0, 1, 1], [0, 1, 1, 1, 1]])),
            ),
            tiny_variance,
        ],
    )


def check_mean_pool(fn: Callable[..., Any]) -> bool:
    """Check ``fn(hidden, attention_mask)``: the mean of each text's real token vectors.

    Args:
        fn: takes hidden states ``(B, N, d)`` and a boolean mask ``(B, N)``, True for real
            tokens; returns ``(B, d)``, ignoring the padding.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-pretrained`.
    """
    _require_callable("fn", fn)
    hidden = _randn(3, 4, 2, seed=30)
    full = torch.ones(3, 4, dtype=torch.bool)
    padded = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)

    def reference(h: torch.Tensor, m: torch.Tensor) -> np.ndarray:
        w = m.to(h.dtype).unsqueeze(-1)
        return ((h * w).sum(1) / w.sum(1)).numpy()

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, args, prop), "the output", prop, args)

    def matches(prop: str, h: torch.Tensor, m: torch.Tensor) -> Callable[[], None]:
        def check() -> None:
            args = {"hidden": h.clone(), "attention_mask": m.clone()}
            want = reference(h, m)
            out = run(args, prop)
            _expect(_close(out, want), prop, args, want, out)

        return check

    def shape() -> None:
        args = {"hidden": hidden.clone(), "attention_mask": full}
        prop = "output shape (B, d) = (3, 2): one vector per text"
        out = run(args, prop)
        _expect(out.shape == (3, 2), prop, args, "shape (3, 2)", f"shape {out.shape}")

    noisy = hidden.clone()
    noisy[~padded] = 1000.0  # what sits in the padding must not matter

    return _run(
        "mean_pool",
        [
            shape,
            matches("without padding: the plain mean over the tokens", hidden, full),
            matches("padding is left out: divide by the number of real tokens", hidden, padded),
            matches("the values in padded positions do not matter", noisy, padded),
        ],
    )


def _reference_rollout(weights: torch.Tensor) -> np.ndarray:
    maps = 0.5 * weights.mean(dim=-3) + 0.5 * torch.eye(weights.shape[-1], dtype=weights.dtype)
    maps = maps / maps.sum(-1, keepdim=True)
    rollout = maps[0]
    for layer_map in maps[1:]:
        rollout = layer_map @ rollout
    return rollout.numpy()


def check_attention_rollout(fn: Callable[..., Any]) -> bool:
    """Check ``fn(weights)``, attention rollout (Abnar & Zuidema, 2020).

    Average the heads of each layer, add the identity for the residual connection
    (``0.5 * A + 0.5 * I``, rows renormalised), and chain the layers,
    ``R = A_L @ ... @ A_1``.

    Args:
        fn: takes weights ``(L, H, N, N)``, first layer first, rows summing to one; returns
            the rollout ``(N, N)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-reading-attention`.
    """
    _require_callable("fn", fn)

    def weights(layers: int, heads: int, n: int, seed: int) -> torch.Tensor:
        return torch.softmax(2.0 * _randn(layers, heads, n, n, seed=seed), dim=-1)

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, args, prop), "the rollout", prop, args)

    def matches(prop: str, w: torch.Tensor) -> Callable[[], None]:
        def check() -> None:
            args = {"weights": w.clone()}
            want = _reference_rollout(w)
            out = run(args, prop)
            _expect(_close(out, want), prop, args, want, out)

        return check

    def shape_and_rows() -> None:
        args = {"weights": weights(3, 2, 4, seed=40)}
        prop = "output shape (N, N) = (4, 4), every row summing to one"
        out = run(args, prop)
        ok = out.shape == (4, 4) and bool(np.allclose(out.sum(-1), 1.0))
        _expect(
            ok, prop, args, "shape (4, 4), row sums 1", f"shape {out.shape}, rows {out.sum(-1)}"
        )

    return _run(
        "attention_rollout",
        [
            shape_and_rows,
            matches("one layer, one head: 0.5 * A + 0.5 * I", weights(1, 1, 3, seed=41)),
            matches("one layer, three heads: average the heads first", weights(1, 3, 3, seed=42)),
            matches(
                "two layers: R = A_2 @ A_1, the later layer on the left", weights(2, 1, 3, seed=43)
            ),
            matches("four layers, two heads, five tokens", weights(4, 2, 5, seed=44)),
        ],
    )


# --- chapter 4: positions and the Transformer block ---------------------------------------


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


def _copy(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value


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


# --- chapter 5 ---------------------------------------------------------------------------


def _reference_box_iou(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp_min(0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    result: np.ndarray = (inter / (area_a[:, None] + area_b[None, :] - inter)).numpy()
    return result


def check_box_iou(fn: Callable[..., Any]) -> bool:
    """Check ``fn(a, b)``, the IoU of every box in ``a`` with every box in ``b``.

    Args:
        fn: takes boxes ``a`` ``(N, 4)`` and ``b`` ``(M, 4)`` as corners
            ``(x0, y0, x1, y1)``; returns the ``(N, M)`` intersection over union.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-detection`.
    """
    _require_callable("fn", fn)

    def run(a: list[list[float]], b: list[list[float]], prop: str) -> None:
        args = {
            "a": torch.tensor(a, dtype=torch.float64),
            "b": torch.tensor(b, dtype=torch.float64),
        }
        out = _array(_call(fn, args, prop), "the IoU", prop, args)
        want = _reference_box_iou(args["a"], args["b"])
        _expect(_close(out, want), prop, args, want, out)

    def shape() -> None:
        a = [[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 4.0]]
        b = [[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0], [1.0, 0.0, 2.0, 3.0]]
        run(a, b, "shape (N, M) = (2, 3): every box of a against every box of b")

    return _run(
        "box_iou",
        [
            lambda: run([[1.0, 2.0, 4.0, 6.0]], [[1.0, 2.0, 4.0, 6.0]], "a box with itself: IoU 1"),
            lambda: run(
                [[0.0, 0.0, 4.0, 2.0]],
                [[2.0, 0.0, 6.0, 2.0]],
                "half-overlapping boxes: IoU = 4 / 12 (corners (x0, y0, x1, y1), not x, y, w, h)",
            ),
            lambda: run(
                [[0.0, 0.0, 1.0, 1.0]],
                [[3.0, 3.0, 4.0, 4.0]],
                "boxes apart on both axes: IoU 0 (clamp a negative overlap to 0 before "
                "multiplying: two negatives make a positive)",
            ),
            lambda: run(
                [[0.0, 0.0, 2.0, 2.0]],
                [[2.0, 0.0, 4.0, 2.0]],
                "boxes that only touch: IoU 0",
            ),
            lambda: run(
                [[0.0, 0.0, 4.0, 4.0]],
                [[1.0, 1.0, 2.0, 2.0]],
                "a box inside another: IoU = small area / large area = 1 / 16",
            ),
            shape,
        ],
    )


def check_squeeze_excitation(cls: type[nn.Module]) -> bool:
    """Check a squeeze-and-excitation module class ``cls(channels, reduction)``.

    The module must have two ``nn.Linear`` layers, ``squeeze`` (``C`` to ``C // reduction``)
    and ``excite`` (back to ``C``), and ``forward(x)`` must return ``x`` ``(B, C, H, W)``
    with each channel multiplied by ``sigmoid(excite(relu(squeeze(mean of x over H, W))))``.

    Args:
        cls: the class (not an instance).

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-channel-spatial`.
    """
    if not isinstance(cls, type):
        raise TypeError(f"cls must be a class, got {type(cls).__name__}")
    channels, reduction = 8, 4
    state: dict[str, nn.Module] = {}

    def build() -> None:
        args = {"channels": channels, "reduction": reduction}
        prop = "cls(channels=8, reduction=4) has squeeze = Linear(8, 2) and excite = Linear(2, 8)"
        module = _call(cls, args, prop)
        squeeze, excite = getattr(module, "squeeze", None), getattr(module, "excite", None)
        ok = (
            isinstance(module, nn.Module)
            and isinstance(squeeze, nn.Linear)
            and isinstance(excite, nn.Linear)
            and (squeeze.in_features, squeeze.out_features) == (channels, channels // reduction)
            and (excite.in_features, excite.out_features) == (channels // reduction, channels)
        )
        got = [
            f"{type(layer).__name__}"
            + (
                f"({layer.in_features}, {layer.out_features})"
                if isinstance(layer, nn.Linear)
                else ""
            )
            for layer in (squeeze, excite)
        ]
        _expect(ok, prop, args, "squeeze Linear(8, 2), excite Linear(2, 8)", got)
        torch.manual_seed(0)
        module = module.double()
        with torch.no_grad():
            for p in module.parameters():
                p.normal_()
        state["module"] = module

    def reference(x: torch.Tensor) -> np.ndarray:
        sq: nn.Module = getattr(state["module"], "squeeze")  # noqa: B009
        ex: nn.Module = getattr(state["module"], "excite")  # noqa: B009
        with torch.no_grad():
            gates = torch.sigmoid(ex(torch.relu(sq(x.mean(dim=(2, 3))))))
        result: np.ndarray = (x * gates[:, :, None, None]).numpy()
        return result

    def matches(x: torch.Tensor, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"x": x}
            with torch.no_grad():
                out = _array(_call(state["module"], args, prop), "the output", prop, args)
            want = reference(x)
            _expect(_close(out, want), prop, args, want, out)

        return check

    x = _randn(2, channels, 5, 4, seed=11)
    peaked = torch.zeros(1, channels, 4, 4, dtype=torch.float64)
    peaked[..., 0, 0] = 16.0  # mean 1, max 16: tells a mean from a max
    return _run(
        "SqueezeExcitation",
        [
            build,
            matches(x, "output = x * sigmoid(excite(relu(squeeze(channel means)))), per channel"),
            matches(
                peaked,
                "the squeeze is the mean over all positions (not the max, not one position)",
            ),
            matches(_randn(3, channels, 1, 7, seed=12), "works for any H, W and batch size"),
        ],
    )


def _reference_penalty(weights: torch.Tensor, mask: torch.Tensor) -> float:
    total = (weights * mask[..., None]).sum(dim=1)  # (B, S)
    return float(((1 - total) ** 2).sum(dim=1).mean())


def check_doubly_stochastic_penalty(fn: Callable[..., Any]) -> bool:
    """Check ``fn(weights, mask)``, Show, Attend and Tell's attention penalty.

    ``penalty = mean over images of sum over cells of (1 - sum over steps of weights)^2``,
    with only the real steps (``mask`` True) counted.

    Args:
        fn: takes ``weights`` ``(B, T, S)`` (each step's attention over ``S`` cells) and a
            boolean ``mask`` ``(B, T)``; returns a scalar tensor.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-captioning`.
    """
    _require_callable("fn", fn)

    def matches(weights: torch.Tensor, mask: torch.Tensor, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"weights": weights, "mask": mask}
            out = _array(_call(fn, args, prop), "the penalty", prop, args)
            want = _reference_penalty(weights, mask)
            _expect(out.shape == () and _close(out, np.array(want)), prop, args, want, out)

        return check

    every_cell_once = torch.eye(4, dtype=torch.float64)[None]  # (1, 4, 4)
    one_cell = torch.zeros(1, 4, 4, dtype=torch.float64)
    one_cell[..., 0] = 1.0
    rng = torch.Generator().manual_seed(13)
    random = torch.softmax(torch.randn(3, 5, 6, generator=rng, dtype=torch.float64), dim=-1)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    mask[2, 1:] = False
    return _run(
        "doubly_stochastic_penalty",
        [
            matches(
                every_cell_once,
                torch.ones(1, 4, dtype=torch.bool),
                "every cell attended once over the steps: penalty 0",
            ),
            matches(
                one_cell,
                torch.ones(1, 4, dtype=torch.bool),
                "all steps on one cell: sum over the steps, then (1 - 4)^2 + 3 * (1 - 0)^2 = 12",
            ),
            matches(
                random,
                torch.ones(3, 5, dtype=torch.bool),
                "the mean over the images of the sum over the cells",
            ),
            matches(random, mask, "padded steps (mask False) do not count"),
        ],
    )


# --- chapter 5: vision ---------------------------------------------------------------------


def check_patchify(fn: Callable[..., Any]) -> bool:
    """Check ``fn(images, patch_size)``, which cuts images into flattened square patches.

    Patches must come in reading order (along the top row of patches first), each flattened
    channel first, then its rows, then its columns: the layout of ``torch.nn.functional.unfold``
    and of a ``Conv2d`` kernel.

    Args:
        fn: takes ``images`` ``(B, C, H, W)`` and an int ``patch_size`` ``p`` dividing ``H``
            and ``W``; returns ``(B, (H / p) * (W / p), C * p * p)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-images-as-sequences`.
    """
    _require_callable("fn", fn)

    def reference(images: torch.Tensor, p: int) -> np.ndarray:
        out: np.ndarray = nn.functional.unfold(images, p, stride=p).transpose(1, 2).numpy()
        return out

    def numbered(*shape: int) -> torch.Tensor:
        return torch.arange(math.prod(shape), dtype=torch.float64).reshape(shape)

    def matches(images: torch.Tensor, p: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"images": images.clone(), "patch_size": p}
            want = reference(images, p)
            out = _array(_call(fn, args, prop), "the output", prop, args)
            if out.shape != want.shape:
                _expect(False, prop, args, f"shape {want.shape}", f"shape {out.shape}")
            _expect(_close(out, want), prop, args, want, out)

        return check

    def shape() -> None:
        images = _randn(2, 1, 4, 4, seed=11)
        args = {"images": images, "patch_size": 2}
        prop = "output shape (B, N, C*p*p): 2 images of 4 x 4 in 2 x 2 patches -> (2, 4, 4)"
        out = _array(_call(fn, args, prop), "the output", prop, args)
        _expect(out.shape == (2, 4, 4), prop, args, "shape (2, 4, 4)", f"shape {out.shape}")

    def leaves_input_alone() -> None:
        images = _randn(1, 2, 4, 4, seed=12)
        given = images.clone()
        args = {"images": given, "patch_size": 2}
        prop = "the input is left unchanged (no in-place edits of images)"
        _call(fn, args, prop)
        _expect(torch.equal(given, images), prop, {"images": images}, images, given)

    return _run(
        "patchify",
        [
            shape,
            matches(
                numbered(1, 1, 4, 4),
                2,
                "pixels numbered 0..15: patch 0 is the top-left 2 x 2 block [0, 1, 4, 5], read "
                "row by row, and the patches go left to right, then down",
            ),
            matches(
                numbered(1, 1, 4, 6),
                2,
                "a 4 x 6 image: 3 patches per row, 2 rows of patches (rows before columns)",
            ),
            matches(
                numbered(1, 3, 2, 2),
                2,
                "3 channels: a patch is flattened channel first, (C, p, p), as in a Conv2d "
                "kernel, not channel last",
            ),
            matches(_randn(3, 2, 6, 4, seed=13), 2, "a batch of 3 images keeps them apart"),
            matches(_randn(2, 1, 4, 4, seed=14), 4, "patch_size = image size: one patch"),
            matches(_randn(2, 1, 3, 2, seed=15), 1, "patch_size = 1: every pixel a token"),
            leaves_input_alone,
        ],
    )


def _reference_attention_distance(weights: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    gh, gw = grid
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    centres = np.stack([rows, cols], axis=-1).astype(np.float64)
    distances = np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(-1))  # (N, N)
    out: np.ndarray = (weights.numpy() * distances).sum(-1).mean(-1)
    return out


def check_mean_attention_distance(fn: Callable[..., Any]) -> bool:
    """Check ``fn(weights, grid)``, the mean attention distance of patches, in patches.

    For query patch ``i`` the distance is ``sum_j a_ij * ||pos_i - pos_j||``, Euclidean,
    with patch ``i`` at row ``i // gw`` and column ``i % gw`` (reading order); the result
    averages it over the queries.

    Args:
        fn: takes ``weights`` ``(..., N, N)`` over ``N = gh * gw`` patches and
            ``grid = (gh, gw)``; returns ``(...)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-vit-attention`.
    """
    _require_callable("fn", fn)

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, args, prop), "the output", prop, args)

    def matches(weights: torch.Tensor, grid: tuple[int, int], prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"weights": weights.clone(), "grid": grid}
            want = _reference_attention_distance(weights, grid)
            out = run(args, prop)
            if out.shape != want.shape:
                _expect(False, prop, args, f"shape {want.shape}", f"shape {out.shape}")
            _expect(_close(out, want), prop, args, want, out)

        return check

    def right_neighbour(gh: int, gw: int) -> torch.Tensor:
        weights = torch.zeros(gh * gw, gh * gw, dtype=torch.float64)
        for i in range(gh * gw):
            r, c = divmod(i, gw)
            weights[i, r * gw + (c + 1 if c + 1 < gw else c - 1)] = 1.0
        return weights

    def looks_at(j: int, n: int) -> torch.Tensor:
        weights = torch.zeros(n, n, dtype=torch.float64)
        weights[:, j] = 1.0
        return weights

    def random_weights(*shape: int, seed: int) -> torch.Tensor:
        return torch.softmax(2 * _randn(*shape, seed=seed), dim=-1)

    return _run(
        "mean_attention_distance",
        [
            matches(torch.eye(4, dtype=torch.float64), (2, 2), "every patch on itself: 0"),
            matches(right_neighbour(2, 3), (2, 3), "every patch on its row neighbour: 1"),
            matches(
                torch.eye(4, dtype=torch.float64).flip(0),
                (2, 2),
                "diagonal neighbours are sqrt(2) apart (Euclidean, not |dr| + |dc|)",
            ),
            matches(
                looks_at(1, 6),
                (3, 2),
                "every patch on patch 1 of a 3 x 2 grid, at row 0, column 1: patch i sits at "
                "row i // gw, column i % gw",
            ),
            matches(
                random_weights(6, 6, seed=16),
                (2, 3),
                "weighted by the attention, averaged (not summed) over the queries",
            ),
            matches(
                random_weights(2, 3, 8, 8, seed=17),
                (2, 4),
                "leading dimensions (layers, heads) are kept: (2, 3, 8, 8) -> (2, 3)",
            ),
        ],
    )


# --- chapter 4: language models, induction heads, attention pooling ----------------------


def check_temperature_sampling(fn: Callable[..., Any]) -> bool:
    """Check ``fn(logits, temperature, generator)``, drawing one next token per row.

    The function should divide the logits by ``temperature``, turn them into probabilities
    with a softmax over the vocabulary (the last dimension) and draw one token per row with
    ``generator``; at temperature 0 it should return the most likely token.

    Args:
        fn: takes ``logits`` ``(B, V)``, a float ``temperature`` >= 0 and a
            ``torch.Generator``; returns ``(B,)`` long token ids.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-language-model`.
    """
    _require_callable("fn", fn)
    base = torch.tensor([[2.0, 1.0, 0.0, -1.0], [-1.0, 0.5, 0.0, 1.5]], dtype=torch.float64)
    rows = 6000
    logits = base.repeat_interleave(rows, dim=0)  # (2 * rows, 4): two distributions

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        out = _call(fn, args, prop)
        if not isinstance(out, torch.Tensor) or out.dtype != torch.long:
            got = f"{type(out).__name__} {getattr(out, 'dtype', '')}"
            raise _Failure(f"{prop}\n   it returned {got}, expected a torch.long tensor (B,)")
        return out.detach().cpu().numpy()

    def shape() -> None:
        args = {"logits": base, "temperature": 1.0, "generator": torch.Generator().manual_seed(0)}
        prop = "one token id per row: logits (2, 4) give a long tensor of shape (2,), ids 0..3"
        out = run(args, prop)
        ok = out.shape == (2,) and bool(((out >= 0) & (out < 4)).all())
        _expect(ok, prop, args, "shape (2,), values in 0..3", out)

    def greedy() -> None:
        args = {"logits": base, "temperature": 0.0, "generator": torch.Generator().manual_seed(0)}
        prop = "temperature 0 picks the most likely token of each row (no division by zero)"
        out = run(args, prop)
        _expect(out.tolist() == [0, 3], prop, args, [0, 3], out)

    def frequencies(temperature: float, prop: str) -> Callable[[], None]:
        def check() -> None:
            gen = torch.Generator().manual_seed(1)
            args = {"logits": logits, "temperature": temperature, "generator": gen}
            out = run(args, prop)
            want = torch.softmax(base / temperature, dim=-1).numpy()
            got = np.stack([np.bincount(out[i * rows : (i + 1) * rows], minlength=4)[:4] / rows
                            for i in range(2)])  # fmt: skip
            shown = {"logits": base, "temperature": temperature, "draws per row": rows}
            _expect(_close(got, want, atol=0.025), prop, shown, want, got)

        return check

    def seeded() -> None:
        prop = "the draws come from the generator given: the same seed gives the same tokens"
        args = {"logits": logits[::100], "temperature": 1.0}
        torch.manual_seed(123)  # a solution that ignores the generator sees two global seeds
        first = run({**args, "generator": torch.Generator().manual_seed(7)}, prop)
        torch.manual_seed(456)
        second = run({**args, "generator": torch.Generator().manual_seed(7)}, prop)
        _expect(bool((first == second).all()), prop, args, first[:12], second[:12])

    return _run(
        "sample_next",
        [
            shape,
            greedy,
            frequencies(1.0, "temperature 1 draws each token with its softmax probability"),
            frequencies(0.5, "temperature 0.5 sharpens: softmax(logits / 0.5), per row"),
            frequencies(3.0, "temperature 3 flattens: softmax(logits / 3), per row"),
            seeded,
        ],
    )


def _induction_weights(period: int, heads: int, seed: int) -> torch.Tensor:
    """Random causal attention weights (heads, 2 * period + 1, 2 * period + 1), rows sum to 1."""
    n = 2 * period + 1
    scores = _randn(heads, n, n, seed=seed) * 2
    scores = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), -math.inf)
    return torch.softmax(scores, dim=-1)


def _reference_prefix_matching(weights: torch.Tensor, period: int) -> torch.Tensor:
    queries = torch.arange(period + 1, 2 * period + 1)
    return weights[..., queries, queries - period + 1].mean(-1)


def check_prefix_matching_score(fn: Callable[..., Any]) -> bool:
    """Check ``fn(weights, period)``, the prefix-matching score of attention heads.

    The sequence is ``BOS, x_1 .. x_L, x_1 .. x_L`` with ``L = period``, so ``N = 2L + 1``.
    The score is the mean, over the queries of the second copy (positions ``L + 1 .. 2L``),
    of the weight each puts on the token just after the earlier copy of its own token,
    at position ``q - L + 1``.

    Args:
        fn: takes ``weights`` ``(..., N, N)`` and the int ``period``; returns ``(...)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-language-model`.
    """
    _require_callable("fn", fn)

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, args, prop), "the score", prop, args)

    def hand_built() -> None:
        period, n = 3, 7
        induction, duplicate, previous = (torch.zeros(n, n, dtype=torch.float64) for _ in "abc")
        for q in range(n):
            induction[q, q - period + 1 if q > period else 0] = 1.0
            duplicate[q, q - period if q > period else 0] = 1.0
            previous[q, max(q - 1, 0)] = 1.0
        weights = torch.stack([induction, duplicate, previous])  # (3, 7, 7)
        args = {"weights": weights, "period": period}
        prop = (
            "hand-built heads (induction, attend to the earlier copy itself, previous token) "
            "score 1, 0, 0"
        )
        out = run(args, prop)
        _expect(_close(out, np.array([1.0, 0.0, 0.0])), prop, args, [1.0, 0.0, 0.0], out)

    def matches(shape: tuple[int, ...], period: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            heads = int(np.prod(shape))
            weights = _induction_weights(period, heads, seed=20 + period)
            weights = weights.reshape(*shape, *weights.shape[-2:])
            args = {"weights": weights, "period": period}
            want = _reference_prefix_matching(weights, period).numpy()
            out = run(args, prop)
            _expect(_close(out, want), prop, args, want, out)

        return check

    return _run(
        "prefix_matching_score",
        [
            hand_built,
            matches((4,), 5, "random causal weights of 4 heads, period 5: one score per head"),
            matches((2, 3), 4, "leading dimensions are kept: (2, 3, 9, 9) -> (2, 3)"),
            matches((2,), 1, "period 1: the stripe is the diagonal, at the query itself"),
        ],
    )


def _reference_pooling(
    states: torch.Tensor, query: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    scores = states @ query / math.sqrt(states.shape[-1])
    weights = torch.softmax(scores.masked_fill(~mask, -math.inf), dim=-1)
    return (weights.unsqueeze(1) @ states).squeeze(1), weights


def check_attention_pooling(fn: Callable[..., Any]) -> bool:
    """Check ``fn(states, query, mask) -> (pooled, weights)``, attention pooling.

    Every token state is scored by its dot product with one query, scaled by
    ``1 / sqrt(d)``; a softmax over the real tokens (``mask`` True) gives the weights, zero
    on padding, and the pooled vector is the weighted sum of the states.

    Args:
        fn: takes ``states`` ``(B, N, d)``, ``query`` ``(d,)`` and a boolean ``mask``
            ``(B, N)``; returns ``pooled`` ``(B, d)`` and ``weights`` ``(B, N)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-applications`.
    """
    _require_callable("fn", fn)
    states, query = _randn(3, 5, 4, seed=30), _randn(4, seed=31) * 2
    full = torch.ones(3, 5, dtype=torch.bool)
    padded = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4])

    def run(args: dict[str, Any], prop: str) -> tuple[np.ndarray, np.ndarray]:
        return _pair(fn, args, prop, ("pooled", "weights"))

    def shapes() -> None:
        args = {"states": states, "query": query, "mask": full}
        prop = "shapes: pooled (B, d) = (3, 4) and weights (B, N) = (3, 5)"
        pooled, weights = run(args, prop)
        got = f"pooled {pooled.shape}, weights {weights.shape}"
        ok = pooled.shape == (3, 4) and weights.shape == (3, 5)
        _expect(ok, prop, args, "pooled (3, 4), weights (3, 5)", got)

    def matches(mask: torch.Tensor, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"states": states, "query": query, "mask": mask}
            want_pooled, want_weights = _reference_pooling(states, query, mask)
            pooled, weights = run(args, prop)
            _expect(_close(weights, want_weights.numpy()), prop, args, want_weights, weights)
            _expect(_close(pooled, want_pooled.numpy()), prop, args, want_pooled, pooled)

        return check

    def sums_to_one() -> None:
        args = {"states": states, "query": query, "mask": padded}
        prop = "each sentence's weights sum to one over its real tokens and are 0 on padding"
        _, weights = run(args, prop)
        ok = np.allclose(weights.sum(-1), 1.0) and np.allclose(weights[~padded.numpy()], 0.0)
        _expect(ok, prop, args, "rows summing to 1, zeros where mask is False", weights)

    return _run(
        "attention_pool",
        [
            shapes,
            sums_to_one,
            matches(full, "weights = softmax(states @ query / sqrt(d)) over the tokens"),
            matches(padded, "padding (mask False) gets weight 0 and changes nothing else"),
        ],
    )


# --- chapter 6: efficiency ---------------------------------------------------------------


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


# --- chapter 3 ---------------------------------------------------------------------------


def check_additive_score(fn: Callable[..., Any]) -> bool:
    """Check ``fn(query, keys, W_q, W_k, w)``, Bahdanau's additive score.

    The score of query ``i`` and key ``j`` is ``w^T tanh(W_q q_i + W_k k_j)``.

    Args:
        fn: takes queries ``(..., N, d_q)``, keys ``(..., M, d_k)``, ``W_q`` ``(d_a, d_q)``,
            ``W_k`` ``(d_a, d_k)`` and ``w`` ``(d_a,)``; returns the scores ``(..., N, M)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-bahdanau-luong`.
    """
    from .attention import AdditiveAttention

    _require_callable("fn", fn)

    def reference(
        q: torch.Tensor, k: torch.Tensor, w_q: torch.Tensor, w_k: torch.Tensor, w: torch.Tensor
    ) -> np.ndarray:
        module = AdditiveAttention(q.shape[-1], k.shape[-1], len(w)).double()
        with torch.no_grad():
            module.query_proj.weight.copy_(w_q)
            module.key_proj.weight.copy_(w_k)
            module.score_proj.weight.copy_(w[None, :])
            scores: np.ndarray = module.scores(q, k).numpy()
        return scores

    def case(
        shape_q: tuple[int, ...],
        shape_k: tuple[int, ...],
        hidden: int,
        seed: int,
        scale: float = 1.0,
    ) -> dict[str, Any]:
        return {
            "query": _randn(*shape_q, seed=seed) * scale,
            "keys": _randn(*shape_k, seed=seed + 1) * scale,
            "W_q": _randn(hidden, shape_q[-1], seed=seed + 2),
            "W_k": _randn(hidden, shape_k[-1], seed=seed + 3),
            "w": _randn(hidden, seed=seed + 4),
        }

    def matches(prop: str, args: dict[str, Any]) -> Callable[[], None]:
        def check() -> None:
            want = reference(*args.values())
            out = _array(_call(fn, args, prop), "the scores", prop, args)
            if out.shape != want.shape:
                _expect(False, prop, args, f"shape {want.shape}", f"shape {out.shape}")
            _expect(_close(out, want), prop, args, want, out)

        return check

    def shape() -> None:
        args = case((3, 4), (5, 4), 6, seed=20)
        prop = "shape: one score per (query, key) pair, (N, M) = (3, 5)"
        out = _array(_call(fn, args, prop), "the scores", prop, args)
        _expect(out.shape == (3, 5), prop, args, "shape (3, 5)", f"shape {out.shape}")

    return _run(
        "additive_score",
        [
            shape,
            matches(
                "scores equal w^T tanh(W_q q_i + W_k k_j) for 3 queries and 5 keys",
                case((3, 4), (5, 4), 6, seed=20),
            ),
            matches(
                "queries and keys of different sizes: d_q = 2, d_k = 7, h = 3",
                case((3, 2), (5, 7), 3, seed=30),
            ),
            matches(
                "large inputs saturate: tanh keeps every hidden unit in [-1, 1]",
                case((2, 3), (4, 3), 5, seed=40, scale=10.0),
            ),
            matches(
                "batch dimensions in front: queries (2, 3, N, d), keys (2, 3, M, d)",
                case((2, 3, 4, 5), (2, 3, 6, 5), 4, seed=50),
            ),
        ],
    )


def check_attention_decoder_step(fn: Callable[..., Any]) -> bool:
    """Check ``fn(cell, attention, embedded, hidden, encoder_outputs, mask)``, one decoder step.

    The step updates the state with the GRU cell, then lets the *new* state attend to the
    encoder states, with the padding masked, and returns the weighted average as the context.
    The reference is :func:`attention_book.models.seq2seq.attention_step`.

    Args:
        fn: takes an ``nn.GRUCell``, a score module with ``scores(query (B, 1, d),
            keys (B, S, d_enc)) -> (B, 1, S)``, the embedded previous token ``(B, E)``, the
            previous state ``(B, d)``, the encoder states ``(B, S, d_enc)`` and a boolean mask
            ``(B, S)`` (True = real token); returns ``(new_hidden (B, d), context (B, d_enc),
            weights (B, S))``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-bahdanau-luong`.
    """
    from .attention import AdditiveAttention, BilinearAttention
    from .models.seq2seq import attention_step

    _require_callable("fn", fn)
    embed, d = 3, 4
    torch.manual_seed(0)
    cell = nn.GRUCell(embed, d).double()
    modules = {
        "additive": AdditiveAttention(d, d, 5).double(),
        "multiplicative": BilinearAttention(d, d).double(),
    }
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])

    def run(args: dict[str, Any], prop: str) -> tuple[np.ndarray, ...]:
        out = _call(fn, args, prop)
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise _Failure(
                f"{prop}\n   it returned {type(out).__name__}, expected a triple "
                "(new_hidden, context, weights)"
            )
        names = ("new_hidden", "context", "weights")
        return tuple(_array(x, name, prop, args) for x, name in zip(out, names, strict=True))

    def inputs(kind: str, seed: int) -> dict[str, Any]:
        return {
            "cell": cell,
            "attention": modules[kind],
            "embedded": _randn(2, embed, seed=seed),
            "hidden": _randn(2, d, seed=seed + 1),
            "encoder_outputs": _randn(2, 5, d, seed=seed + 2),
            "mask": mask,
        }

    def want(args: dict[str, Any]) -> tuple[np.ndarray, ...]:
        with torch.no_grad():
            return tuple(x.numpy() for x in attention_step(*args.values()))

    def shapes() -> None:
        args = inputs("additive", 60)
        prop = "shapes: new_hidden (B, d) = (2, 4), context (B, d_enc) = (2, 4), weights (2, 5)"
        got = tuple(x.shape for x in run(args, prop))
        _expect(got == ((2, 4), (2, 4), (2, 5)), prop, args, ((2, 4), (2, 4), (2, 5)), got)

    def weights_ok() -> None:
        args = inputs("additive", 70)
        prop = "padding gets weight 0 and each row's weights sum to one over the source"
        weights = run(args, prop)[2]
        ok = np.allclose(weights.sum(-1), 1.0) and np.allclose(weights[1, 3:], 0.0)
        _expect(ok, prop, args, "row sums [1, 1] and weights[1, 3:] = [0, 0]", weights)

    def part(index: int, kind: str, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = inputs(kind, 80 + 10 * index)
            expected = want(args)[index]
            got = run(args, prop)[index]
            _expect(_close(got, expected), prop, args, expected, got)

        return check

    return _run(
        "attention_decoder_step",
        [
            shapes,
            weights_ok,
            part(0, "additive", "new_hidden: the GRU cell applied to (embedded, hidden)"),
            part(2, "additive", "weights: the softmax of the scores of the NEW hidden state"),
            part(1, "additive", "context: the weighted average of the encoder states"),
            part(2, "multiplicative", "works with a multiplicative (bilinear) score as well"),
        ],
    )


# --- chapter 6: sparse and kernel attention -----------------------------------------------


def check_dilated_window_mask(fn: Callable[..., Any]) -> bool:
    """Check ``fn(n, window, dilation)``: the causal mask of a dilated sliding window.

    Query ``i`` may see key ``j`` when ``j = i - t * dilation`` for ``t = 0 .. window - 1``.

    Args:
        fn: takes ints ``n``, ``window`` and ``dilation``, each > 0; returns a bool tensor
            ``(n, n)``, ``True`` where query ``i`` may attend to key ``j``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-sparse-attention`.
    """
    _require_callable("fn", fn)

    def matches(n: int, window: int, dilation: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"n": n, "window": window, "dilation": dilation}
            gap = torch.arange(n)[:, None] - torch.arange(n)[None, :]
            want = (gap >= 0) & (gap <= (window - 1) * dilation) & (gap % dilation == 0)
            out = _call(fn, args, prop)
            if not isinstance(out, torch.Tensor) or out.dtype != torch.bool:
                raise _Failure(f"{prop}\n   it returned {_fmt(out)}, expected a bool tensor")
            got = _array(out, "the mask", prop, args)
            _expect(
                got.shape == want.shape and bool((got == want.numpy()).all()), prop, args, want, out
            )

        return check

    return _run(
        "dilated_window_mask",
        [
            matches(6, 2, 1, "window 2, no gaps: each query sees itself and the key before"),
            matches(5, 1, 1, "window 1: only the diagonal"),
            matches(9, 3, 2, "window 3, dilation 2: keys i, i - 2, i - 4"),
            matches(10, 2, 4, "window 2, dilation 4: keys i and i - 4"),
            matches(4, 10, 1, "a window longer than the sequence: all of the past"),
        ],
    )


def check_causal_linear_attention(fn: Callable[..., Any]) -> bool:
    """Check ``fn(q, k, v, chunk_size)``: causal linear attention with ``phi = elu + 1``.

    Query ``i`` attends to keys ``j <= i`` with weights ``phi(q_i) . phi(k_j)``, normalised
    to sum to one; the sums are carried from chunk to chunk.

    Args:
        fn: takes ``q (..., N, d)``, ``k (..., N, d)``, ``v (..., N, d_v)`` and an int
            ``chunk_size`` > 0; returns ``(..., N, d_v)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-kernel-attention`.
    """
    _require_callable("fn", fn)

    def reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        a = (nn.functional.elu(q) + 1) @ (nn.functional.elu(k) + 1).transpose(-2, -1)  # (..., N, N)
        a = a.tril()
        return (a @ v) / a.sum(-1, keepdim=True)

    def matches(n: int, chunk: int, seed: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            q, k, v = (
                _randn(2, n, 4, seed=seed),
                _randn(2, n, 4, seed=seed + 1),
                _randn(2, n, 3, seed=seed + 2),
            )
            args = {"q": q, "k": k, "v": v, "chunk_size": chunk}
            want = reference(q, k, v)
            got = _array(
                _call(fn, {name: _copy(x) for name, x in args.items()}, prop),
                "the output",
                prop,
                args,
            )
            _expect(_close(got, want.numpy()), prop, args, want, got)

        return check

    return _run(
        "causal_linear_attention",
        [
            matches(4, 4, 31, "one chunk: a masked product"),
            matches(8, 2, 34, "four chunks: carry the sums from the chunks before"),
            matches(7, 3, 37, "7 positions in chunks of 3: the last chunk is shorter"),
            matches(6, 1, 40, "chunk_size = 1: one position at a time"),
        ],
    )


# --- chapter 6: ring attention -------------------------------------------------------------


def _reference_ring_step(
    out: torch.Tensor, lse: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    part, part_lse = torch.softmax(s, -1) @ v, torch.logsumexp(s, -1)
    new_lse = torch.logaddexp(lse, part_lse)
    safe = torch.where(torch.isfinite(new_lse), new_lse, torch.zeros_like(new_lse))
    mixed = torch.exp(lse - safe)[..., None] * out + torch.exp(part_lse - safe)[..., None] * part
    return mixed, new_lse


def check_ring_step(fn: Callable[..., Any]) -> bool:
    """Check ``fn(out, lse, q, k, v) -> (out, lse)``: one step of ring attention on one rank.

    ``out`` and ``lse`` are the rank's running attention output and the log-sum-exp of its
    scores over the key blocks seen so far (``0`` and ``-inf`` before the first); ``k`` and
    ``v`` are the block that just arrived. The function returns the pair for the keys seen so
    far and the new block, with scores ``q k^T / sqrt(d)``. Applied to every block in any
    order, it gives attention over all keys.

    Args:
        fn: takes ``out (..., n, d_v)``, ``lse (..., n)``, ``q (..., n, d)``, ``k (..., b, d)``
            and ``v (..., b, d_v)``; returns ``(out, lse)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-ring-attention`.
    """
    _require_callable("fn", fn)

    def ring(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, order: list[int], prop: str
    ) -> Callable[[], None]:
        def check() -> None:
            k_blocks, v_blocks = k.chunk(len(order), dim=-2), v.chunk(len(order), dim=-2)
            out = torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype)
            lse = torch.full(q.shape[:-1], -math.inf, dtype=q.dtype)
            for j in order:  # the student's result of one step is the input of the next
                args = {"out": out, "lse": lse, "q": q, "k": k_blocks[j], "v": v_blocks[j]}
                want_out, want_lse = _reference_ring_step(out, lse, q, k_blocks[j], v_blocks[j])
                got = _pair(fn, {n: x.clone() for n, x in args.items()}, prop, ("out", "lse"))
                _expect(_close(got[0], want_out.numpy()), f"{prop} (out)", args, want_out, got[0])
                _expect(_close(got[1], want_lse.numpy()), f"{prop} (lse)", args, want_lse, got[1])
                out, lse = torch.from_numpy(got[0]), torch.from_numpy(got[1])

        return check

    q, k, v = _randn(3, 16, seed=21), _randn(8, 16, seed=22), _randn(8, 2, seed=23)
    q4, k4, v4 = (
        _randn(2, 3, 4, 4, seed=24),
        _randn(2, 3, 12, 4, seed=25),
        _randn(2, 3, 12, 3, seed=26),
    )
    return _run(
        "ring_step",
        [
            ring(q, k, v, [0], "the first step (out = 0, lse = -inf): attention over one block"),
            ring(q, k, v, [0, 1], "two steps: attention over both blocks, scores / sqrt(d)"),
            ring(q4, k4, v4, [1, 2, 0], "batch and head dims; the blocks arrive as 1, 2, 0"),
            ring(q * 1000, k, v, [0, 1], "scores in the thousands: exp overflows unless you shift"),
        ],
    )


def check_causal_ring_skips(fn: Callable[..., Any]) -> bool:
    """Check ``fn(world_size)``: the ``(rank, step)`` pairs a causal ring can skip.

    At step ``s`` rank ``r`` holds the key-value block of rank ``(r - s) mod P``. With a
    causal mask, a block whose keys all come after the rank's queries contributes nothing, and
    the rank can skip that step's computation. The function returns those pairs, in any order.

    Args:
        fn: takes an int ``world_size`` > 0; returns a collection of ``(rank, step)`` pairs.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-ring-attention`.
    """
    _require_callable("fn", fn)

    def matches(world: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"world_size": world}
            want = [(r, s) for r in range(world) for s in range(world) if (r - s) % world > r]
            got = _call(fn, args, prop)
            try:
                pairs: Any = sorted((int(r), int(s)) for r, s in got)
            except (TypeError, ValueError):
                shape = f"{prop}: return a collection of (rank, step) pairs"
                _expect(False, shape, args, want, got)
            _expect(pairs == want, prop, args, want, pairs)

        return check

    return _run(
        "causal_ring_skips",
        [
            matches(1, "one rank: nothing to skip"),
            matches(2, "two ranks: rank 0 skips the block of rank 1"),
            matches(4, "four ranks: no rank skips its own block (step 0)"),
            matches(7, "seven ranks: P (P - 1) / 2 of the P^2 steps are skipped"),
        ],
    )


# --- chapter 6: inference ------------------------------------------------------------------


def check_repeat_kv(fn: Callable[..., Any]) -> bool:
    """Check ``fn(x, n_rep)``: repeat each key/value head for the query heads of its group.

    ``x`` is ``(B, H_kv, M, d)``; the result is ``(B, H_kv * n_rep, M, d)`` whose head ``h``
    is head ``h // n_rep`` of ``x``, as grouped-query attention needs.

    Args:
        fn: takes a tensor ``x`` and an int ``n_rep`` > 0; returns a tensor.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-inference`.
    """
    _require_callable("fn", fn)

    def matches(x: torch.Tensor, n_rep: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"x": x.clone(), "n_rep": n_rep}
            want = x.repeat_interleave(n_rep, dim=1)
            got = _array(_call(fn, args, prop), "the result", prop, args)
            if got.shape != tuple(want.shape):
                _expect(False, prop, args, f"shape {tuple(want.shape)}", f"shape {got.shape}")
            heads = [round(float(got[0, h, 0, 0])) // 100 for h in range(got.shape[1])]
            wanted = [int(w) // 100 for w in want[0, :, 0, 0].tolist()]
            if heads != wanted:  # entry = 100 * head + 10 * position + feature: name the heads
                _expect(False, prop, args, f"heads in the order {wanted}", f"heads {heads}")
            _expect(_close(got, want.numpy()), prop, args, want, got)

        return check

    def numbered(b: int, h: int, m: int, d: int) -> torch.Tensor:
        """Entries 100 * head + 10 * position + feature (+ 1000 * batch): easy to read."""
        x = (
            1000 * torch.arange(b)[:, None, None, None]
            + 100 * torch.arange(h)[None, :, None, None]
            + 10 * torch.arange(m)[None, None, :, None]
            + torch.arange(d)[None, None, None, :]
        )
        return x.to(torch.float64)

    return _run(
        "repeat_kv",
        [
            matches(numbered(1, 2, 3, 2), 1, "n_rep = 1 (multi-head attention): x unchanged"),
            matches(numbered(1, 2, 3, 2), 2, "two key/value heads for four query heads"),
            matches(numbered(1, 3, 2, 2), 4, "heads in place, 0 0 0 0 1 1 1 1 ..., not tiled"),
            matches(numbered(1, 1, 4, 3), 8, "one key/value head for eight (multi-query)"),
            matches(numbered(2, 2, 5, 4), 3, "a batch of two; positions and features untouched"),
        ],
    )


def _reference_gqa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    n, m = q.shape[-2], k.shape[-2]
    mask = torch.ones(n, m, dtype=torch.bool).tril(diagonal=m - n)  # queries: the last n of m
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, -math.inf)
    return torch.softmax(scores, dim=-1) @ v


def check_grouped_query_attention(fn: Callable[..., Any]) -> bool:
    """Check ``fn(q, k, v)``: causal attention in which groups of query heads share keys.

    ``q`` is ``(B, H, N, d)``, ``k`` and ``v`` are ``(B, H_kv, M, d)`` with ``H_kv`` dividing
    ``H`` and ``N <= M``: the queries are the last ``N`` of ``M`` positions (earlier ones come
    from a cache), and query ``i`` sees keys ``0 .. M - N + i``. Query head ``h`` uses key/value
    head ``h // (H / H_kv)``; scores are scaled by ``1 / sqrt(d)``.

    Args:
        fn: takes ``q``, ``k``, ``v``; returns the output ``(B, H, N, d)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-inference`.
    """
    _require_callable("fn", fn)

    def matches(
        heads: int, kv_heads: int, n: int, m: int, prop: str, seed: int
    ) -> Callable[[], None]:
        def check() -> None:
            q = _randn(2, heads, n, 4, seed=seed)
            k, v = (
                _randn(2, kv_heads, m, 4, seed=seed + 1),
                _randn(2, kv_heads, m, 4, seed=seed + 2),
            )
            args = {"q": q.clone(), "k": k.clone(), "v": v.clone()}
            want = _reference_gqa(q, k, v)
            got = _array(_call(fn, args, prop), "the output", prop, args)
            _expect(_close(got, want.numpy()), prop, args, want, got)

        return check

    return _run(
        "grouped_query_attention",
        [
            matches(2, 2, 5, 5, "as many key/value heads as query heads: causal multi-head", 31),
            matches(4, 1, 5, 5, "one key/value head shared by every query head (MQA)", 32),
            matches(4, 2, 5, 5, "heads 0, 1 read key/value head 0; heads 2, 3 read head 1", 33),
            matches(4, 2, 1, 7, "one decoding step: the new query sees all 7 cached keys", 34),
            matches(6, 3, 3, 8, "3 new queries after 5 cached keys: query i sees 5 + i + 1", 35),
        ],
    )
