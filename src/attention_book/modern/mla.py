"""Multi-head latent attention (DeepSeek-V2): cache one small latent per token, not keys and values.

Every position is compressed into a latent ``c_KV = W_DKV h`` of ``d_latent`` numbers, from
which each head's content key and value are recovered by up-projections, ``k_C = W_UK c_KV``
and ``v_C = W_UV c_KV``. Positions enter through a separate rotary key ``k_R = RoPE(W_KR h)``
of ``d_rope`` numbers, shared by all heads, and one rotary query per head. Scores are
``(q_C . k_C + q_R . k_R) / sqrt(d_head + d_rope)``. The cache holds only ``c_KV`` and
``k_R``; at inference ``W_UK`` is folded into the query projection and ``W_UV`` into the
output projection, so keys and values are never expanded (``absorb=True``).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .. import _validate
from ..attention import causal_mask
from ..efficient import KVCache
from ..positions import apply_rotary

__all__ = ["LatentKVCache", "MultiHeadLatentAttention", "latent_cache_bytes"]


def _positive_even(name: str, value: object) -> int:
    """Return ``value`` if it is an even int > 0 (rotary positions rotate feature pairs)."""
    value = _validate.positive_int(name, value)
    if value % 2:
        raise ValueError(
            f"{name} must be even (rotary positions rotate pairs of features), got {value}"
        )
    return value


class LatentKVCache(KVCache):
    """The cache of multi-head latent attention: per position, a latent and a rotary key.

    A :class:`attention_book.efficient.KVCache` whose "keys" are the latents ``c_KV``
    ``(B, n, d_latent)`` and whose "values" are the shared rotary keys ``k_R``
    ``(B, n, d_rope)``: ``d_latent + d_rope`` numbers per position, whatever the number of
    heads. ``update(latent, rope_key)`` appends and returns all cached ones; ``nbytes`` counts
    the storage.

    Introduced in :ref:`sec-latent-attention`.
    """

    @property
    def latent(self) -> torch.Tensor | None:
        """The cached latents ``(B, length, d_latent)``, ``None`` before the first update."""
        return None if self._keys is None else self._keys[..., : self.length, :]

    @property
    def rope_key(self) -> torch.Tensor | None:
        """The cached rotary keys ``(B, length, d_rope)``, ``None`` before the first update."""
        return None if self._values is None else self._values[..., : self.length, :]


class MultiHeadLatentAttention(nn.Module):
    """Causal self-attention whose keys and values come from a shared low-rank latent.

    ``absorb=False`` computes every head's keys and values from the cached latents, as in the
    paper's training equations; ``absorb=True`` folds ``W_UK`` into the queries and ``W_UV``
    into the output projection and attends in latent space, as at inference. Both give the
    same output. For :class:`attention_book.models.decoder.DecoderLM`, pass
    ``attention=lambda i: MultiHeadLatentAttention(...)``: the module asks for rotary tables of
    size ``d_rope`` (``rotary_dim``) and makes its own cache (:meth:`new_cache`).

    Introduced in :ref:`sec-latent-attention`.
    """

    def __init__(
        self, d_model: int, num_heads: int, d_latent: int, d_rope: int, absorb: bool = False
    ) -> None:
        """Create the projections: queries, latent down-projection, up-projections, output.

        Args:
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: heads ``H``, > 0; each has content queries, keys and values of
                ``d_head = d_model / H`` numbers.
            d_latent: size of the cached latent ``c_KV``, > 0 (DeepSeek-V2: ``4 d_head``).
            d_rope: size of the rotary query of each head and of the shared rotary key, > 0
                and even (DeepSeek-V2: ``d_head / 2``).
            absorb: attend in latent space with ``W_UK`` and ``W_UV`` folded into the query
                and output projections (the attribute can be changed later).
        """
        super().__init__()
        d_model = _validate.positive_int("d_model", d_model)
        num_heads = _validate.positive_int("num_heads", num_heads)
        d_latent = _validate.positive_int("d_latent", d_latent)
        d_rope = _positive_even("d_rope", d_rope)
        if d_model % num_heads:
            raise ValueError(
                f"d_model must be divisible by num_heads, got d_model={d_model}, "
                f"num_heads={num_heads} (d_model / num_heads is the head size)"
            )
        if not isinstance(absorb, bool):
            raise TypeError(f"absorb must be a bool, got {type(absorb).__name__}")
        self.d_model, self.num_heads, self.d_latent, self.d_rope = (
            d_model,
            num_heads,
            d_latent,
            d_rope,
        )
        self.d_head = d_model // num_heads
        self.rotary_dim = d_rope  # DecoderLM builds rotary tables of this size
        self.absorb = absorb
        self.q_proj = nn.Linear(d_model, d_model)  # W_Q: content queries q_C of all heads
        self.q_rope_proj = nn.Linear(d_model, num_heads * d_rope)  # W_QR: rotary queries
        self.kv_down = nn.Linear(d_model, d_latent)  # W_DKV: h -> c_KV, what is cached
        self.k_rope_proj = nn.Linear(d_model, d_rope)  # W_KR: one rotary key for all heads
        self.k_up = nn.Linear(d_latent, d_model, bias=False)  # W_UK: c_KV -> k_C of all heads
        self.v_up = nn.Linear(d_latent, d_model, bias=False)  # W_UV: c_KV -> v_C of all heads
        self.out_proj = nn.Linear(d_model, d_model)  # W_O

    @property
    def scale(self) -> float:
        """The score scale ``1 / sqrt(d_head + d_rope)``: a query has that many numbers."""
        return 1.0 / math.sqrt(self.d_head + self.d_rope)

    def new_cache(self, max_len: int) -> LatentKVCache:
        """Make an empty :class:`LatentKVCache` for ``max_len`` positions (for ``DecoderLM``)."""
        return LatentKVCache(max_len)

    def absorbed_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fold ``W_UK`` into the query projection and ``W_UV`` into the output projection.

        Head ``i``'s content score is ``q_C,i . (W_UK,i c) = (W_UK,i^T W_Q,i h) . c``, and its
        output enters ``W_O,i (W_UV,i o)`` with ``o`` the weighted sum of latents.

        Returns:
            ``(query_weight, query_bias, output_weight)``: ``(H, d_latent, d_model)`` with
            ``W_UK,i^T W_Q,i``, ``(H, d_latent)`` with ``W_UK,i^T b_Q,i``, and
            ``(H, d_model, d_latent)`` with ``W_O,i W_UV,i``.
        """
        h, dh, dc, d = self.num_heads, self.d_head, self.d_latent, self.d_model
        w_uk = self.k_up.weight.view(h, dh, dc)  # head i: rows i*dh .. (i+1)*dh of W_UK
        query_weight = w_uk.transpose(1, 2) @ self.q_proj.weight.view(h, dh, d)  # (H, dc, d)
        query_bias = (w_uk.transpose(1, 2) @ self.q_proj.bias.view(h, dh, 1)).squeeze(-1)
        w_o = self.out_proj.weight.view(d, h, dh).transpose(0, 1)  # (H, d, dh): columns of head i
        output_weight = w_o @ self.v_up.weight.view(h, dh, dc)  # (H, d, dc)
        return query_weight, query_bias, output_weight

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Let the new positions attend to themselves and to every cached position before them.

        Args:
            x: ``(B, N, d_model)``, the new positions.
            rotary: ``(cos, sin)``, each ``(N, d_rope / 2)``, the rotary tables of the new
                positions (:func:`attention_book.positions.rotary_embedding`).
            cache: latents and rotary keys of the earlier positions (a :class:`LatentKVCache`);
                this call appends those of ``x``. ``None``: ``x`` is the whole sequence.

        Returns:
            ``(B, N, d_model)``.
        """
        x = _validate.tensor("x", x, min_ndim=3)
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"x must be (B, N, d_model={self.d_model}), got {tuple(x.shape)}")
        b, n, _ = x.shape
        h, dr = self.num_heads, self.d_rope
        q_rope = self.q_rope_proj(x).view(b, n, h, dr).transpose(1, 2)  # (B, H, N, dr)
        q_rope = apply_rotary(q_rope, *rotary)
        latent = self.kv_down(x)  # (B, N, dc): c_KV
        k_rope = apply_rotary(self.k_rope_proj(x), *rotary)  # (B, N, dr): k_R, shared
        if cache is not None:
            latent, k_rope = cache.update(latent, k_rope)  # (B, M, dc), (B, M, dr)
        if self.absorb:
            return self._absorbed(x, q_rope, latent, k_rope)
        return self._expanded(x, q_rope, latent, k_rope)

    def _expanded(
        self, x: torch.Tensor, q_rope: torch.Tensor, latent: torch.Tensor, k_rope: torch.Tensor
    ) -> torch.Tensor:
        """Every head's keys and values recovered from the latents, then attention."""
        (b, n, _), m = x.shape, latent.shape[1]
        h, dh, dr = self.num_heads, self.d_head, self.d_rope
        q = self.q_proj(x).view(b, n, h, dh).transpose(1, 2)  # (B, H, N, dh): q_C
        k = self.k_up(latent).view(b, m, h, dh).transpose(1, 2)  # (B, H, M, dh): k_C
        v = self.v_up(latent).view(b, m, h, dh).transpose(1, 2)  # (B, H, M, dh): v_C
        q = torch.cat([q, q_rope], dim=-1)  # (B, H, N, dh + dr)
        k = torch.cat([k, k_rope[:, None].expand(b, h, m, dr)], dim=-1)  # (B, H, M, dh + dr)
        mask = None if n == 1 else causal_mask(n, m, device=x.device)  # (N, M)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, self.d_model))  # type: ignore[no-any-return]

    def _absorbed(
        self, x: torch.Tensor, q_rope: torch.Tensor, latent: torch.Tensor, k_rope: torch.Tensor
    ) -> torch.Tensor:
        """Attention in latent space: one key/value "head" of size d_latent (+ d_rope) for all."""
        (b, n, _), m = x.shape, latent.shape[1]
        h, dc = self.num_heads, self.d_latent
        query_weight, query_bias, output_weight = self.absorbed_weights()
        q_latent = torch.einsum("bnd,hcd->bhnc", x, query_weight) + query_bias[:, None]
        q = torch.cat([q_latent, q_rope], dim=-1).reshape(b, 1, h * n, -1)  # heads as rows
        k = torch.cat([latent, k_rope], dim=-1)[:, None]  # (B, 1, M, dc + dr)
        mask = None if n == 1 else causal_mask(n, m, device=x.device).repeat(h, 1)  # (H N, M)
        out = F.scaled_dot_product_attention(
            q, k, latent[:, None], attn_mask=mask, scale=self.scale
        )  # (B, 1, H N, dc): weighted sums of latents
        out = torch.einsum("bhnc,hdc->bnd", out.view(b, h, n, dc), output_weight)
        return out + self.out_proj.bias


def latent_cache_bytes(
    num_layers: int,
    d_latent: int,
    d_rope: int,
    length: int,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
) -> int:
    """Count the bytes that multi-head latent attention caches for its sequences.

    Every layer stores, per position, the latent ``c_KV`` (``d_latent`` numbers) and the shared
    rotary key ``k_R`` (``d_rope``): ``num_layers * (d_latent + d_rope) * length * batch_size``
    numbers, whatever the number of heads. Compare
    :func:`attention_book.efficient.kv_cache_bytes`, ``2 * num_kv_heads * head_dim`` numbers per
    layer and position.

    Args:
        num_layers: decoder layers, > 0.
        d_latent: size of the latent, > 0.
        d_rope: size of the rotary key, > 0 and even.
        length: cached positions per sequence, > 0.
        batch_size: sequences, > 0.
        dtype: the dtype of the cached tensors.

    Returns:
        The size in bytes, as an int.

    Introduced in :ref:`sec-latent-attention`.
    """
    numbers = _validate.positive_int("d_latent", d_latent) + _positive_even("d_rope", d_rope)
    for name, count in (("num_layers", num_layers), ("length", length), ("batch_size", batch_size)):
        numbers *= _validate.positive_int(name, count)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__}")
    return numbers * dtype.itemsize
