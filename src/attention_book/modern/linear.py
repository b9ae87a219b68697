"""Linear attention as a recurrent network: gated linear attention and the delta rule.

Causal linear attention without its normaliser keeps a matrix state ``S_t`` of shape
``(d_v, d_k)`` and reads it with the query: ``o_t = S_t q_t``. Two updates are here.

* :func:`gated_linear_attention`: ``S_t = a_t S_{t-1} + v_t k_tᵀ`` with a scalar decay
  ``a_t = exp(log_decay_t)`` in ``(0, 1]`` (RetNet's fixed decay, the data-dependent scalar gate
  of Mamba-2; all zeros in log space give plain causal linear attention).
* :func:`delta_rule_attention`: ``S_t = a_t S_{t-1} (I - β_t k_t k_tᵀ) + β_t v_t k_tᵀ``, a write
  that replaces the value stored under ``k_t`` (DeltaNet; with a decay, Gated DeltaNet).

Each has three forms that give the same output: ``chunk_size=None`` runs the recurrence token by
token; ``chunk_size >= N`` is one masked attention, ``(q kᵀ ⊙ D) v`` with the 1-semiseparable
mask :func:`decay_mask` (the state-space duality); any other ``chunk_size`` splits the sequence
into chunks, attends inside each chunk and passes the state between chunks (for the delta rule
the inside of a chunk is solved with one unit-triangular system, the WY/UT representation).
:func:`linear_state_bytes` gives the state's size, to compare with
:func:`attention_book.efficient.kv_cache_bytes`.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .. import _validate

__all__ = [
    "decay_mask",
    "delta_rule_attention",
    "gated_linear_attention",
    "linear_state_bytes",
]


def _shape(name: str, value: torch.Tensor, want: tuple[int, ...], wanted: str) -> None:
    if tuple(value.shape) != want:
        raise ValueError(f"{name} must have shape {wanted} = {want}, got {tuple(value.shape)}")


def _inputs(
    q: object,
    k: object,
    v: object,
    gate: object,
    gate_name: str,
    initial_state: object,
    chunk_size: object,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, int | None]:
    """Validate the shared arguments; return them typed."""
    q = _validate.tensor("q", q, min_ndim=2)
    k = _validate.tensor("k", k, min_ndim=2)
    v = _validate.tensor("v", v, min_ndim=2)
    gate = _validate.tensor(gate_name, gate, min_ndim=1)
    _shape("k", k, tuple(q.shape), "q.shape (..., N, d_k)")
    _shape("v", v, (*q.shape[:-1], v.shape[-1]), "(..., N, d_v) with q's (..., N)")
    _shape(gate_name, gate, tuple(q.shape[:-1]), "(..., N) with q's (..., N)")
    state = None
    if initial_state is not None:
        state = _validate.tensor("initial_state", initial_state, min_ndim=2)
        want = (*q.shape[:-2], v.shape[-1], q.shape[-1])
        _shape("initial_state", state, want, "(..., d_v, d_k)")
    if q.shape[-2] == 0:
        raise ValueError(f"q must hold at least one position (N >= 1), got {tuple(q.shape)}")
    for name, x in (("k", k), ("v", v), (gate_name, gate), ("initial_state", state)):
        if x is not None and (x.dtype, x.device) != (q.dtype, q.device):
            raise TypeError(
                f"{name} must share q's dtype and device, got {x.dtype}/{x.device}, "
                f"wanted {q.dtype}/{q.device}"
            )
    size = None if chunk_size is None else _validate.positive_int("chunk_size", chunk_size)
    return q, k, v, gate, state, size


def _log_decay(log_decay: object, q: torch.Tensor) -> torch.Tensor:
    ld = _validate.tensor("log_decay", log_decay, min_ndim=1)
    _shape("log_decay", ld, tuple(q.shape[:-1]), "(..., N) with q's (..., N)")
    if bool((ld > 0).any()):
        raise ValueError(
            f"log_decay must be <= 0 everywhere (a decay a_t = exp(log_decay_t) in (0, 1]; "
            f"a positive entry makes the state grow), got max {float(ld.max()):.4g} "
            f"in a tensor of shape {tuple(ld.shape)}"
        )
    return ld


def _segsum(x: torch.Tensor) -> torch.Tensor:
    """``out[..., t, s] = sum_{s < r <= t} x_r`` for ``s <= t``, ``-inf`` above the diagonal.

    Sums each segment directly (a masked cumulative sum), never as a difference of two long
    prefix sums, so no precision is lost to cancellation.
    """
    n = x.shape[-1]
    rows = x.unsqueeze(-1).expand(*x.shape, n)  # rows[..., r, s] = x_r
    strict = torch.ones(n, n, dtype=torch.bool, device=x.device).tril(-1)
    sums = rows.masked_fill(~strict, 0.0).cumsum(dim=-2)  # sum over s < r <= t
    causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
    return sums.masked_fill(~causal, float("-inf"))


def decay_mask(log_decay: torch.Tensor) -> torch.Tensor:
    """Build the 1-semiseparable mask of a scalar decay.

    ``D[..., t, s] = exp(sum_{s < r <= t} log_decay_r) = a_{s+1} ... a_t`` for ``s <= t`` (so
    the diagonal is 1) and 0 above the diagonal: how much of the value written at step ``s``
    is left at step ``t``. Computed by masking before the ``exp``, with each segment summed
    directly, so it is stable however long the sequence.

    Args:
        log_decay: ``(..., N)``, every entry <= 0.

    Returns:
        ``(..., N, N)``, lower triangular, entries in ``[0, 1]``.

    Introduced in :ref:`sec-linear-rnn`.
    """
    ld = _validate.tensor("log_decay", log_decay, min_ndim=1)
    if bool((ld > 0).any()):
        raise ValueError(
            f"log_decay must be <= 0 everywhere, got max {float(ld.max()):.4g} "
            f"in a tensor of shape {tuple(ld.shape)}"
        )
    return torch.exp(_segsum(ld))


def _chunks(x: torch.Tensor, size: int, n: int, pad: int, vector: bool) -> torch.Tensor:
    """Pad the token axis with zeros to a multiple of ``size`` and split it into chunks."""
    if vector:
        x = F.pad(x, (0, 0, 0, pad))
        return x.reshape(*x.shape[:-2], n, size, x.shape[-1])
    x = F.pad(x, (0, pad))
    return x.reshape(*x.shape[:-1], n, size)


def _chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    ld: torch.Tensor,
    beta: torch.Tensor | None,
    state: torch.Tensor,
    size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunkwise form of both updates (``beta=None``: gated linear attention)."""
    length = q.shape[-2]
    size = min(size, length)
    n = -(-length // size)
    pad = n * size - length  # padded steps: k = v = 0, beta = 0, no decay: the state is kept
    qc, kc, vc = (_chunks(x, size, n, pad, True) for x in (q, k, v))
    lc = _chunks(ld, size, n, pad, False)
    mask = torch.exp(_segsum(lc))  # (..., n, C, C): decay from s to t inside a chunk
    decay_in = torch.exp(lc.cumsum(-1)).unsqueeze(-1)  # (..., n, C, 1): from chunk start to t
    decay_out = mask[..., -1, :].unsqueeze(-1)  # (..., n, C, 1): from t to chunk end
    decay_all = decay_in[..., -1:, :]  # (..., n, 1, 1): across the whole chunk
    scores = (qc @ kc.transpose(-1, -2)) * mask
    if beta is not None:
        # u_t = β_t (v_t - a_t S_{t-1} k_t) solves (I + A) U = βV - (β e^b K) S0ᵀ, with
        # A[t, s] = β_t D[t, s] k_t·k_s for s < t: one unit-lower-triangular solve per chunk.
        bc = _chunks(beta, size, n, pad, False).unsqueeze(-1)
        eye = torch.eye(size, dtype=q.dtype, device=q.device)
        a = (bc * (kc @ kc.transpose(-1, -2)) * mask).tril(-1) + eye
        rhs = torch.cat([bc * vc, bc * decay_in * kc], dim=-1)
        solved = torch.linalg.solve_triangular(a, rhs, upper=False, unitriangular=True)
        u_plain, w = solved[..., : v.shape[-1]], solved[..., v.shape[-1] :]
    outs = []
    for c in range(n):
        if beta is None:
            u = vc[..., c, :, :]
        else:
            u = u_plain[..., c, :, :] - w[..., c, :, :] @ state.transpose(-1, -2)
        inter = decay_in[..., c, :, :] * (qc[..., c, :, :] @ state.transpose(-1, -2))
        outs.append(inter + scores[..., c, :, :] @ u)
        written = (u * decay_out[..., c, :, :]).transpose(-1, -2) @ kc[..., c, :, :]
        state = decay_all[..., c, :, :] * state + written
    out = torch.cat(outs, dim=-2)[..., :length, :]
    return out, state


def _recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    ld: torch.Tensor,
    beta: torch.Tensor | None,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrent form, one token at a time."""
    decay = torch.exp(ld)
    outs = []
    for t in range(q.shape[-2]):
        kt, vt = k[..., t, :], v[..., t, :]
        state = decay[..., t, None, None] * state
        if beta is None:
            state = state + vt.unsqueeze(-1) * kt.unsqueeze(-2)
        else:
            # S (I - β k kᵀ) + β v kᵀ = S + β (v - S k) kᵀ
            error = vt - (state @ kt.unsqueeze(-1)).squeeze(-1)
            state = state + beta[..., t, None, None] * error.unsqueeze(-1) * kt.unsqueeze(-2)
        outs.append((state @ q[..., t, :].unsqueeze(-1)).squeeze(-1))
    return torch.stack(outs, dim=-2), state


def _finish(
    result: tuple[torch.Tensor, torch.Tensor], return_state: bool
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    return result if return_state else result[0]


def gated_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    chunk_size: int | None = None,
    *,
    initial_state: torch.Tensor | None = None,
    return_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run causal linear attention with a scalar decay gate: ``o_t = S_t q_t``.

    ``S_t = a_t S_{t-1} + v_t k_tᵀ`` with ``a_t = exp(log_decay_t)`` and ``S_0`` the
    ``initial_state`` (zeros by default). No scaling, normaliser or feature map is applied:
    the caller applies them to ``q`` and ``k``.

    Args:
        q: queries ``(..., N, d_k)``.
        k: keys ``(..., N, d_k)``.
        v: values ``(..., N, d_v)``.
        log_decay: ``(..., N)``, every entry <= 0 (zeros: no decay).
        chunk_size: ``None`` runs the recurrence token by token; an int ``C >= 1`` runs the
            chunkwise form (``C`` need not divide ``N``); ``C >= N`` is the parallel form
            ``(q kᵀ ⊙ D) v`` with ``D = decay_mask(log_decay)``.
        initial_state: ``(..., d_v, d_k)`` or ``None``.
        return_state: also return the final state ``S_N``.

    Returns:
        The output ``(..., N, d_v)``, or ``(output, S_N)`` when ``return_state``.

    Introduced in :ref:`sec-linear-rnn`.
    """
    q, k, v, ld, state, size = _inputs(q, k, v, log_decay, "log_decay", initial_state, chunk_size)
    ld = _log_decay(ld, q)
    if state is None:
        state = q.new_zeros(*q.shape[:-2], v.shape[-1], q.shape[-1])
    if size is None:
        return _finish(_recurrent(q, k, v, ld, None, state), return_state)
    return _finish(_chunked(q, k, v, ld, None, state, size), return_state)


def delta_rule_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    chunk_size: int | None = None,
    *,
    log_decay: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    return_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run the (gated) delta rule: ``o_t = S_t q_t``.

    ``S_t = a_t S_{t-1} (I - β_t k_t k_tᵀ) + β_t v_t k_tᵀ = a_t S_{t-1} + β_t (v_t -
    a_t S_{t-1} k_t) k_tᵀ``: the value the state returns for ``k_t`` moves a fraction ``β_t``
    of the way to ``v_t``. ``a_t = 1`` without ``log_decay`` (DeltaNet), ``exp(log_decay_t)``
    with it (Gated DeltaNet).

    Keys should have unit norm (DeltaNet L2-normalises ``q`` and ``k`` in the layer); this is
    documented, not checked. The three forms agree for any keys, but only with ``‖k_t‖ = 1``
    does ``I - β_t k_t k_tᵀ`` have its eigenvalues (``1`` and ``1 - β_t``) in ``[-1, 1]`` for
    every ``β_t`` in ``[0, 2]``, so that the transition never stretches the state (only the
    bounded writes ``β_t v_t k_tᵀ`` add to it); a tolerance-based norm check
    would reject half-precision keys that are normalised and would cost a pass over the keys.

    Args:
        q: queries ``(..., N, d_k)``.
        k: keys ``(..., N, d_k)``, unit norm.
        v: values ``(..., N, d_v)``.
        beta: write strengths ``(..., N)`` in ``[0, 2]``.
        chunk_size: ``None`` runs the recurrence; an int ``C >= 1`` the chunkwise form (the
            WY/UT representation: one unit-triangular solve per chunk); ``C >= N`` is the
            parallel form.
        log_decay: ``(..., N)``, entries <= 0, or ``None`` (no decay).
        initial_state: ``(..., d_v, d_k)`` or ``None``.
        return_state: also return the final state ``S_N``.

    Returns:
        The output ``(..., N, d_v)``, or ``(output, S_N)`` when ``return_state``.

    Introduced in :ref:`sec-linear-rnn`.
    """
    q, k, v, beta, state, size = _inputs(q, k, v, beta, "beta", initial_state, chunk_size)
    if bool(((beta < 0) | (beta > 2)).any()):
        raise ValueError(
            "beta must lie in [0, 2] (outside it I - beta k kᵀ has an eigenvalue 1 - beta "
            "outside [-1, 1], so the delta step stops contracting and can stretch the state), "
            f"got min {float(beta.min()):.4g}, max {float(beta.max()):.4g} "
            f"in a tensor of shape {tuple(beta.shape)}"
        )
    ld = beta.new_zeros(beta.shape) if log_decay is None else _log_decay(log_decay, q)
    if (ld.dtype, ld.device) != (q.dtype, q.device):
        raise TypeError(
            f"log_decay must share q's dtype and device, got {ld.dtype}/{ld.device}, "
            f"wanted {q.dtype}/{q.device}"
        )
    if state is None:
        state = q.new_zeros(*q.shape[:-2], v.shape[-1], q.shape[-1])
    if size is None:
        return _finish(_recurrent(q, k, v, ld, beta, state), return_state)
    return _finish(_chunked(q, k, v, ld, beta, state, size), return_state)


def linear_state_bytes(
    num_layers: int,
    num_heads: int,
    d_k: int,
    d_v: int,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
) -> int:
    """Count the bytes of the recurrent state of a stack of linear-attention layers.

    Each head of each layer keeps one ``(d_v, d_k)`` matrix per sequence, whatever the
    sequence's length: ``num_layers * num_heads * d_k * d_v * batch_size`` numbers. Compare
    :func:`attention_book.efficient.kv_cache_bytes`, which grows with the length.

    Args:
        num_layers: layers, > 0.
        num_heads: heads per layer, > 0.
        d_k: key (and query) size per head, > 0.
        d_v: value size per head, > 0.
        batch_size: sequences, > 0.
        dtype: the dtype of the state.

    Returns:
        The size in bytes, as an int.

    Introduced in :ref:`sec-linear-rnn`.
    """
    numbers = 1
    names = ("num_layers", "num_heads", "d_k", "d_v", "batch_size")
    for name, count in zip(names, (num_layers, num_heads, d_k, d_v, batch_size), strict=True):
        numbers *= _validate.positive_int(name, count)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__}")
    return numbers * torch.empty((), dtype=dtype).element_size()
