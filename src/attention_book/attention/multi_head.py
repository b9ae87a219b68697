"""Multi-head attention: ``H`` scaled dot-product attentions side by side, in ``d_model / H``."""

from __future__ import annotations

import torch
from torch import nn

from .. import _validate
from ..positions import apply_rotary
from .dot_product import scaled_dot_product_attention

__all__ = ["MultiHeadAttention"]


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
