"""Score functions, softmax, masks and attention, written to be read.

Shapes follow one convention across the book: batch dimensions first, then the sequence,
then features. Queries are ``(..., N, d)``, keys ``(..., M, d)``, values ``(..., M, d_v)``;
with heads, ``(B, H, N, d)``. A boolean mask is True where a query may attend to a key
(PyTorch's convention for ``scaled_dot_product_attention``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import _validate
from .positions import apply_rotary

__all__ = [
    "AdditiveAttention",
    "BilinearAttention",
    "MultiHeadAttention",
    "causal_mask",
    "dot_product_scores",
    "padding_mask",
    "scaled_dot_product_attention",
    "softmax",
]


def softmax(
    scores: torch.Tensor,
    dim: int = -1,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Turn scores into positive weights that sum to one along ``dim``.

    Subtracting the maximum before exponentiating changes nothing mathematically (softmax is
    shift invariant) but keeps ``exp`` from overflowing for large scores.

    Args:
        scores: any floating-point tensor.
        dim: the dimension along which the weights sum to one.
        temperature: divides the scores first; below 1 sharpens the weights, above 1
            flattens them. Must be > 0.
        mask: optional boolean tensor broadcastable to ``scores``; False entries get weight
            exactly 0. A slice with no True entry gets all-zero weights, not NaN.

    Returns:
        A tensor of the shape and dtype of ``scores``.

    Introduced in :ref:`sec-soft-lookup`; masks in :ref:`sec-masks`.
    """
    _validate.tensor("scores", scores)
    _validate.dim_index("dim", dim, scores.ndim)
    temperature = _validate.positive("temperature", temperature)
    z = scores / temperature
    if mask is not None:
        _check_mask(mask, tuple(scores.shape), "scores")
        z = z.masked_fill(~mask, -math.inf)
    top = z.amax(dim=dim, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # all-masked slice
    e = (z - top).exp()  # the largest allowed entry becomes exp(0) = 1, masked ones 0
    total = e.sum(dim=dim, keepdim=True)
    return e / total.clamp_min(torch.finfo(e.dtype).tiny)


def dot_product_scores(
    queries: torch.Tensor, keys: torch.Tensor, scale: float | None = 1.0
) -> torch.Tensor:
    """Score every key against every query by a (scaled) dot product.

    Args:
        queries: ``(..., N, d)``.
        keys: ``(..., M, d)``, with the leading dimensions of ``queries``.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``. Must be > 0.

    Returns:
        Scores ``(..., N, M)``.

    Introduced in :ref:`sec-score-functions`.
    """
    _check_queries_keys(queries, keys)
    if scale is None:
        scale = 1.0 / math.sqrt(queries.shape[-1])
    scale = _validate.positive("scale", scale)
    return (queries @ keys.transpose(-2, -1)) * scale  # (..., N, M)


def scaled_dot_product_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Let every query take a weighted average of the values, weighted by its key scores.

    ``weights = softmax(scale * queries @ keys^T + bias)`` over the allowed keys, and
    ``output = weights @ values``.

    Args:
        queries: ``(..., N, d)``.
        keys: ``(..., M, d)``, with the same leading dimensions as ``queries``.
        values: ``(..., M, d_v)``, one value per key.
        mask: optional boolean tensor broadcastable to ``(..., N, M)``; True where the query
            may attend to the key. A query with no allowed key gets all-zero weights and a
            zero output.
        scale: multiplies the scores; ``None`` means ``1 / sqrt(d)``. A soft dictionary
            lookup at temperature ``T`` is ``scale = 1 / T``. Must be > 0.
        bias: optional floating-point tensor broadcastable to ``(..., N, M)``, in the dtype
            of ``queries``, added to the scaled scores before the softmax (and the mask), as
            ALiBi's distance penalty is.

    Returns:
        ``(output, weights)``: ``output`` is ``(..., N, d_v)``; ``weights`` is ``(..., N, M)``
        and each row sums to one (or zero, for a query with no allowed key).

    Introduced in :ref:`sec-soft-lookup`; masks in :ref:`sec-masks`; the bias in
    :ref:`sec-positions`.
    """
    scores = dot_product_scores(queries, keys, scale=scale)  # (..., N, M)
    _check_values(keys, values)
    if bias is not None:
        _check_bias(bias, scores)
        scores = scores + bias  # (..., N, M)
    weights = softmax(scores, dim=-1, mask=mask)  # (..., N, M)
    return weights @ values, weights  # (..., N, d_v), (..., N, M)


def causal_mask(n: int, m: int | None = None, device: torch.device | None = None) -> torch.Tensor:
    """Build the mask that lets each query see only keys at its own position or earlier.

    Args:
        n: number of queries, > 0.
        m: number of keys, >= ``n``; ``None`` means ``n``. When ``n < m`` the queries are the
            last ``n`` positions (query ``i`` sits at position ``m - n + i``), as when a
            decoder with a cache of ``m - n`` earlier keys processes ``n`` new tokens.
        device: where to create the mask.

    Returns:
        A boolean ``(n, m)`` tensor, True where query ``i`` may attend to key ``j``.

    Introduced in :ref:`sec-masks`.
    """
    n = _validate.positive_int("n", n)
    m = n if m is None else _validate.positive_int("m", m)
    if m < n:
        raise ValueError(f"m must be >= n (each query needs its own key), got n={n}, m={m}")
    return torch.ones(n, m, dtype=torch.bool, device=device).tril(diagonal=m - n)


def padding_mask(lengths: torch.Tensor | list[int], max_len: int) -> torch.Tensor:
    """Mark the real tokens of a batch of sequences padded to ``max_len``.

    Args:
        lengths: ``(B,)`` integer lengths, each in ``[0, max_len]``.
        max_len: the padded length, > 0.

    Returns:
        A boolean ``(B, max_len)`` tensor, True for real tokens. As a key mask for
        attention weights ``(B, N, M)`` use ``mask[:, None, :]``; with heads
        ``(B, H, N, M)``, ``mask[:, None, None, :]``.

    Introduced in :ref:`sec-masks`.
    """
    max_len = _validate.positive_int("max_len", max_len)
    if isinstance(lengths, list):
        lengths = torch.tensor(lengths, dtype=torch.long)
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(f"lengths must be a tensor or a list of ints, got {type(lengths).__name__}")
    if lengths.ndim != 1 or lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError(
            f"lengths must be a 1-D integer tensor (B,), got {lengths.dtype} of shape "
            f"{tuple(lengths.shape)}"
        )
    if len(lengths) and (lengths.min() < 0 or lengths.max() > max_len):
        raise ValueError(f"lengths must lie in [0, max_len={max_len}], got {lengths.tolist()}")
    positions = torch.arange(max_len, device=lengths.device)
    return positions[None, :] < lengths[:, None]  # (B, max_len)


class _ScoredAttention(nn.Module):
    """Attention with a learned score function: subclasses define ``_scores(query, key)``."""

    def __init__(self, query_dim: int, key_dim: int) -> None:
        super().__init__()
        self.query_dim = _validate.positive_int("query_dim", query_dim)
        self.key_dim = _validate.positive_int("key_dim", key_dim)

    def scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Score every key against every query.

        Args:
            query: ``(..., N, query_dim)``.
            key: ``(..., M, key_dim)``.

        Returns:
            Scores ``(..., N, M)``.
        """
        _check_rank_and_batch(query, key, "query", "key")
        _check_last_dim("query", query, self.query_dim)
        _check_last_dim("key", key, self.key_dim)
        return self._scores(query, key)

    def _scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend: weights from the scores, output the weighted sum of the values.

        Args:
            query: ``(..., N, query_dim)``.
            key: ``(..., M, key_dim)``.
            value: ``(..., M, d_v)``.
            mask: optional boolean, broadcastable to ``(..., N, M)``; True = may attend.

        Returns:
            ``(output (..., N, d_v), weights (..., N, M))``.
        """
        scores = self.scores(query, key)  # (..., N, M)
        _check_values(key, value)
        weights = softmax(scores, mask=mask)
        return weights @ value, weights


class AdditiveAttention(_ScoredAttention):
    """Bahdanau's additive attention: score = w^T tanh(W_q q + W_k k).

    Introduced in :ref:`sec-score-functions`.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        """Create the two projections and the scoring vector.

        Args:
            query_dim: size of a query, > 0.
            key_dim: size of a key, > 0.
            hidden_dim: size of the hidden layer the two are added in, > 0.
        """
        super().__init__(query_dim, key_dim)
        _validate.positive_int("hidden_dim", hidden_dim)
        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, hidden_dim, bias=False)
        self.score_proj = nn.Linear(hidden_dim, 1, bias=False)

    def _scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        hidden = self.query_proj(query).unsqueeze(-2) + self.key_proj(key).unsqueeze(-3)
        scores: torch.Tensor = self.score_proj(torch.tanh(hidden))  # (..., N, M, 1)
        return scores.squeeze(-1)  # (..., N, M)


class BilinearAttention(_ScoredAttention):
    """Luong's general (bilinear) attention: score = q^T W k.

    Introduced in :ref:`sec-score-functions`.
    """

    def __init__(self, query_dim: int, key_dim: int) -> None:
        """Create the bilinear form ``W`` of shape ``(query_dim, key_dim)``.

        Args:
            query_dim: size of a query, > 0.
            key_dim: size of a key, > 0.
        """
        super().__init__(query_dim, key_dim)
        self.key_proj = nn.Linear(key_dim, query_dim, bias=False)  # W k, so q^T W k = q . (W k)

    def _scores(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        projected: torch.Tensor = self.key_proj(key)  # (..., M, query_dim)
        return query @ projected.transpose(-2, -1)  # (..., N, M)


class MultiHeadAttention(nn.Module):
    """Multi-head attention: project, split into heads, attend, merge, project.

    Introduced in :ref:`sec-multi-head`.
    """

    def __init__(self, d_model: int, num_heads: int, bias: bool = True) -> None:
        """Create the query, key, value and output projections.

        Args:
            d_model: size of the model's vectors, > 0 and divisible by ``num_heads``.
            num_heads: number of heads ``H``, > 0; each works in ``d_model / H`` dimensions.
            bias: give the four projections a bias.
        """
        super().__init__()
        _validate.positive_int("d_model", d_model)
        _validate.positive_int("num_heads", num_heads)
        if d_model % num_heads:
            raise ValueError(
                f"d_model must be divisible by num_heads, got d_model={d_model}, "
                f"num_heads={num_heads}"
            )
        self.d_model, self.num_heads, self.d_head = d_model, num_heads, d_model // num_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """Reshape ``(B, N, d_model)`` into ``(B, H, N, d_head)``.

        Args:
            x: ``(B, N, d_model)``.

        Returns:
            ``(B, H, N, d_head)``.
        """
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.d_head).transpose(1, 2)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """Reshape ``(B, H, N, d_head)`` back into ``(B, N, d_model)``.

        Args:
            x: ``(B, H, N, d_head)``.

        Returns:
            ``(B, N, d_model)``.
        """
        b, _, n, _ = x.shape
        return x.transpose(1, 2).reshape(b, n, self.d_model)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend from every query to every key, in ``H`` heads at once.

        Args:
            query: ``(B, N, d_model)``.
            key: ``(B, M, d_model)``.
            value: ``(B, M, d_model)``.
            mask: optional boolean, broadcastable to ``(B, H, N, M)``; True = may attend.
                An ``(N, M)`` mask applies to every sequence and head; a ``(B, N, M)`` mask
                to every head of its sequence.
            bias: optional float, broadcastable to ``(B, H, N, M)``, added to every head's
                scaled scores, e.g. ALiBi's ``(H, N, M)``
                (:func:`attention_book.positions.alibi_bias`).
            rotary: optional ``(cos, sin)``, each ``(L, d_head / 2)`` with ``L >= M``, from
                :func:`attention_book.positions.rotary_embedding`: rotate every head's keys by
                positions ``0 .. M-1`` and its queries by the last ``N`` of them (RoPE).

        Returns:
            ``(output (B, N, d_model), weights (B, H, N, M))``.
        """
        for name, x in (("query", query), ("key", key), ("value", value)):
            _validate.tensor(name, x)
            if x.ndim != 3 or x.shape[-1] != self.d_model:
                raise ValueError(
                    f"{name} must be (B, length, d_model={self.d_model}), got {tuple(x.shape)}"
                )
        if key.shape != value.shape or key.shape[0] != query.shape[0]:
            raise ValueError(
                "key and value must be (B, M, d_model) with the batch size of query "
                f"{tuple(query.shape)}, got key {tuple(key.shape)} and value {tuple(value.shape)}"
            )
        if isinstance(mask, torch.Tensor) and mask.ndim == 3:
            mask = mask.unsqueeze(1)  # (B, N, M) -> (B, 1, N, M): the same for every head
        q = self.split_heads(self.q_proj(query))  # (B, H, N, d_head)
        k = self.split_heads(self.k_proj(key))  # (B, H, M, d_head)
        v = self.split_heads(self.v_proj(value))  # (B, H, M, d_head)
        if rotary is not None:
            q, k = self._rotate(q, k, rotary)
        heads, weights = scaled_dot_product_attention(q, k, v, mask=mask, bias=bias)
        # heads (B, H, N, d_head), weights (B, H, N, M)
        return self.out_proj(self.merge_heads(heads)), weights  # (B, N, d_model), (B, H, N, M)

    def _rotate(
        self, q: torch.Tensor, k: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate keys by positions ``0 .. M-1`` and queries by the last ``N`` positions."""
        n, m = q.shape[-2], k.shape[-2]
        if not isinstance(rotary, tuple) or len(rotary) != 2:
            raise TypeError(f"rotary must be a (cos, sin) pair, got {type(rotary).__name__}")
        if n > m:
            raise ValueError(
                f"rotary needs at most as many queries as keys (queries are the last N of M "
                f"positions), got N={n}, M={m}"
            )
        cos, sin = rotary
        want = f"(L >= {m}, d_head / 2 = {self.d_head // 2})"
        for name, table in (("cos", cos), ("sin", sin)):
            _validate.tensor(f"rotary {name}", table)
            if table.ndim != 2 or table.shape[0] < m or 2 * table.shape[1] != self.d_head:
                raise ValueError(
                    f"rotary {name} must be {want} for keys of length {m}, got {tuple(table.shape)}"
                )
        q = apply_rotary(q, cos[m - n : m], sin[m - n : m])  # (B, H, N, d_head)
        k = apply_rotary(k, cos[:m], sin[:m])  # (B, H, M, d_head)
        return q, k

    @classmethod
    def from_torch(cls, module: nn.MultiheadAttention) -> MultiHeadAttention:
        """Build a copy of a ``torch.nn.MultiheadAttention``, with its weights.

        Args:
            module: a PyTorch multi-head attention whose queries, keys and values all have
                ``embed_dim`` features, without ``add_bias_kv`` or ``add_zero_attn``.

        Returns:
            A :class:`MultiHeadAttention` that computes the same outputs and weights.
        """
        if not isinstance(module, nn.MultiheadAttention):
            raise TypeError(
                f"module must be a torch.nn.MultiheadAttention, got {type(module).__name__}"
            )
        if not module._qkv_same_embed_dim:
            raise ValueError(
                f"module must have kdim = vdim = embed_dim = {module.embed_dim}, "
                f"got kdim={module.kdim}, vdim={module.vdim}"
            )
        if module.bias_k is not None or module.add_zero_attn:
            raise ValueError("module must not use add_bias_kv or add_zero_attn")
        bias = module.in_proj_bias is not None
        ours = cls(module.embed_dim, module.num_heads, bias=bias)
        ours.to(device=module.in_proj_weight.device, dtype=module.in_proj_weight.dtype)
        with torch.no_grad():
            projections = (ours.q_proj, ours.k_proj, ours.v_proj)
            weights = module.in_proj_weight.chunk(3)
            for proj, weight in zip(projections, weights, strict=True):
                proj.weight.copy_(weight)
            ours.out_proj.weight.copy_(module.out_proj.weight)
            if bias:
                for proj, b in zip(projections, module.in_proj_bias.chunk(3), strict=True):
                    proj.bias.copy_(b)
                ours.out_proj.bias.copy_(module.out_proj.bias)
        return ours


# --- argument checks ---------------------------------------------------------------------


def _check_rank_and_batch(a: torch.Tensor, b: torch.Tensor, a_name: str, b_name: str) -> None:
    _validate.tensor(a_name, a, min_ndim=2)
    _validate.tensor(b_name, b, min_ndim=2)
    if b.ndim != a.ndim or b.shape[:-2] != a.shape[:-2]:
        raise ValueError(
            f"{b_name} must be (..., M, d) with the leading dims of {a_name} "
            f"{tuple(a.shape)}, got {tuple(b.shape)}"
        )
    if a.dtype != b.dtype:
        raise TypeError(f"{a_name} and {b_name} must share one dtype, got {a.dtype} and {b.dtype}")


def _check_last_dim(name: str, x: torch.Tensor, size: int) -> None:
    if x.shape[-1] != size:
        raise ValueError(f"{name} must have {size} features, got shape {tuple(x.shape)}")


def _check_queries_keys(queries: torch.Tensor, keys: torch.Tensor) -> None:
    _check_rank_and_batch(queries, keys, "queries", "keys")
    if keys.shape[-1] != queries.shape[-1]:
        raise ValueError(
            f"keys must have the feature size d={queries.shape[-1]} of queries "
            f"{tuple(queries.shape)}, got {tuple(keys.shape)}"
        )


def _check_values(keys: torch.Tensor, values: torch.Tensor) -> None:
    _validate.tensor("values", values, min_ndim=2)
    if values.ndim != keys.ndim or values.shape[:-1] != keys.shape[:-1]:
        raise ValueError(
            f"values must be (..., M, d_v) matching keys {tuple(keys.shape)} in all but the "
            f"last dim, got {tuple(values.shape)}"
        )
    if values.dtype != keys.dtype:
        raise TypeError(
            f"queries, keys and values must share one dtype, got {keys.dtype} and {values.dtype}"
        )


def _check_bias(bias: object, scores: torch.Tensor) -> None:
    if not isinstance(bias, torch.Tensor):
        raise TypeError(f"bias must be a floating-point torch.Tensor, got {type(bias).__name__}")
    if bias.dtype != scores.dtype:
        raise TypeError(f"bias must have the dtype {scores.dtype} of the scores, got {bias.dtype}")
    target = tuple(scores.shape)
    if not _validate.broadcasts_to(bias.shape, target):
        raise ValueError(
            f"bias of shape {tuple(bias.shape)} does not broadcast to the scores shape {target}"
        )


def _check_mask(mask: object, target: tuple[int, ...], target_name: str) -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a boolean torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must have dtype torch.bool (True = may attend), got {mask.dtype}")
    if not _validate.broadcasts_to(mask.shape, target):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the {target_name} "
            f"shape {target}"
        )
