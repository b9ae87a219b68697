"""Learned sparse attention: score blocks of keys, attend to the top-k blocks and a window.

Native Sparse Attention (NSA) compresses the keys of each block, scores the blocks with the
queries, and attends to the best blocks and a sliding window; the blocks are shared by the
heads of a key/value group. Here one selection is shared by a *block* of queries too, so a
single gather of ``top_k * block_size`` keys serves ``block_size`` queries as one matrix
product. :func:`topk_block_attention` is exactly dense attention under
:func:`topk_block_mask`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import _validate
from ..efficient import repeat_kv
from ..models.decoder import GroupedQueryAttention
from ..positions import apply_rotary

__all__ = [
    "NativeSparseAttention",
    "block_scores",
    "compress_blocks",
    "select_blocks",
    "topk_block_attention",
    "topk_block_mask",
]


def _check_qk(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor | None = None) -> None:
    _validate.tensor("q", q, min_ndim=4)
    _validate.tensor("k", k, min_ndim=4)
    if q.ndim != 4 or k.ndim != 4:
        raise ValueError(
            f"q and k must be (B, H, N, d) and (B, H_kv, N, d), got {tuple(q.shape)} and "
            f"{tuple(k.shape)}"
        )
    b, h, n, d = q.shape
    if k.shape[0] != b or k.shape[2] != n or k.shape[3] != d or h % k.shape[1]:
        raise ValueError(
            f"k must be (B, H_kv, N, d) = ({b}, H_kv, {n}, {d}) with H_kv dividing H = {h}, "
            f"got {tuple(k.shape)}"
        )
    if v is not None:
        _validate.tensor("v", v, min_ndim=4)
        if v.ndim != 4 or v.shape[:3] != k.shape[:3]:
            raise ValueError(
                f"v must be (B, H_kv, N, d_v) with the first dims of k {tuple(k.shape[:3])}, "
                f"got {tuple(v.shape)}"
            )


def _check_sizes(n: int, block_size: int, top_k: int, window: int) -> None:
    _validate.positive_int("block_size", block_size)
    _validate.positive_int("top_k", top_k)
    if isinstance(window, bool) or not isinstance(window, int):
        raise TypeError(f"window must be an int, got {type(window).__name__}")
    if window < 0:
        raise ValueError(f"window must be >= 0 (positions before the query), got {window}")
    if top_k > n // block_size:
        raise ValueError(
            f"top_k must be at most the N // block_size = {n} // {block_size} = "
            f"{n // block_size} complete blocks, got {top_k}"
        )


def compress_blocks(k: torch.Tensor, block_size: int) -> torch.Tensor:
    """Compress each complete block of ``block_size`` keys to their mean.

    Args:
        k: keys ``(..., N, d)``.
        block_size: keys per block, > 0; the ``N % block_size`` last keys form no block.

    Returns:
        ``(..., N // block_size, d)``: block ``b`` is the mean of keys
        ``b * block_size .. (b + 1) * block_size - 1``.

    Introduced in :ref:`sec-learned-sparse`.
    """
    _validate.tensor("k", k, min_ndim=2)
    block_size = _validate.positive_int("block_size", block_size)
    nb = k.shape[-2] // block_size
    blocks = k[..., : nb * block_size, :].unflatten(-2, (nb, block_size))
    means: torch.Tensor = blocks.mean(-2)  # (..., nb, d)
    return means


def block_scores(q: torch.Tensor, k: torch.Tensor, block_size: int) -> torch.Tensor:
    """Score each key block for each block of queries, shared by the heads of a group.

    A query's score of block ``b`` is its attention probability over the compressed keys
    (:func:`compress_blocks`) of the blocks that end before its query block starts; the
    scores of a query block add those of its queries and of the heads sharing a key head.

    Args:
        q: queries ``(B, H, N, d)``.
        k: keys ``(B, H_kv, N, d)``, ``H_kv`` dividing ``H``.
        block_size: positions per block, > 0 (for queries and keys alike).

    Returns:
        ``(B, H_kv, ceil(N / block_size), N // block_size)``; ``-inf`` where the key block
        does not end before the query block starts (a causal choice may not look ahead).

    Introduced in :ref:`sec-learned-sparse`.
    """
    _check_qk(q, k)
    block_size = _validate.positive_int("block_size", block_size)
    _, h, n, d = q.shape
    hk, nq = k.shape[1], -(-n // block_size)
    kc = compress_blocks(k, block_size)  # (B, H_kv, nb, d)
    nb = kc.shape[-2]
    qg = q.unflatten(1, (hk, h // hk))  # (B, H_kv, g, N, d)
    logits = qg @ kc.unsqueeze(2).transpose(-1, -2) / math.sqrt(d)  # (B, H_kv, g, N, nb)
    qblock = torch.arange(n, device=q.device) // block_size
    allowed = torch.arange(nb, device=q.device) < qblock[:, None]  # (N, nb)
    # query block 0 has no block before it: its uniform row is discarded below
    probs = torch.softmax(logits.masked_fill(~allowed, torch.finfo(q.dtype).min), -1)
    pad = nq * block_size - n
    probs = F.pad(probs, (0, 0, 0, pad)).unflatten(-2, (nq, block_size))
    scores = probs.sum((2, -2))  # (B, H_kv, nq, nb): sum over heads and queries of a block
    early = torch.arange(nb, device=q.device) >= torch.arange(nq, device=q.device)[:, None]
    result: torch.Tensor = scores.masked_fill(early, -math.inf)
    return result


def select_blocks(
    q: torch.Tensor, k: torch.Tensor, block_size: int, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose each query block's ``top_k`` key blocks among those before it.

    Args:
        q: queries ``(B, H, N, d)``.
        k: keys ``(B, H_kv, N, d)``.
        block_size: positions per block, > 0.
        top_k: blocks chosen, 1 .. ``N // block_size``.

    Returns:
        ``(index, valid)``, both ``(B, H_kv, ceil(N / block_size), top_k)``: the chosen
        block numbers (long) and whether each is a real choice (query block ``i`` has only
        ``i`` blocks before it).

    Introduced in :ref:`sec-learned-sparse`.
    """
    _check_qk(q, k)
    _check_sizes(q.shape[-2], block_size, top_k, 0)
    with torch.no_grad():  # a choice has no gradient; NSA trains it through compression
        scores = block_scores(q, k, block_size)
        value, index = scores.topk(top_k, dim=-1)  # (B, H_kv, nq, top_k)
    return index, value > -math.inf


def topk_block_mask(
    q: torch.Tensor, k: torch.Tensor, block_size: int, top_k: int, window: int
) -> torch.Tensor:
    """Return the dense mask that :func:`topk_block_attention` attends under.

    Query ``i`` sees key ``j`` when ``i - window <= j <= i`` (itself and the ``window``
    positions before it) or when ``j`` lies in one of the blocks chosen for ``i``'s block.

    Args:
        q: queries ``(B, H, N, d)``.
        k: keys ``(B, H_kv, N, d)``.
        block_size: positions per block, > 0.
        top_k: blocks chosen per query block, 1 .. ``N // block_size``.
        window: positions before the query always seen, >= 0.

    Returns:
        A boolean mask ``(B, H, N, N)``, ``True`` where query ``i`` sees key ``j``.

    Introduced in :ref:`sec-learned-sparse`.
    """
    _check_qk(q, k)
    n, h, hk = q.shape[-2], q.shape[1], k.shape[1]
    _check_sizes(n, block_size, top_k, window)
    index, valid = select_blocks(q, k, block_size, top_k)
    nb = n // block_size
    chosen = torch.zeros(*index.shape[:3], nb + 1, dtype=torch.bool, device=q.device)
    chosen.scatter_(-1, index.masked_fill(~valid, nb), True)  # invalid: a spare column
    per_query = chosen[..., :nb].repeat_interleave(block_size, dim=2)[:, :, :n]  # (B,H_kv,N,nb)
    keys = F.pad(per_query.repeat_interleave(block_size, dim=-1), (0, n - nb * block_size))
    pos = torch.arange(n, device=q.device)
    local = (pos[None, :] <= pos[:, None]) & (pos[None, :] >= pos[:, None] - window)
    return repeat_kv(keys, h // hk) | local  # (B, H, N, N)


def topk_block_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_size: int,
    top_k: int,
    window: int,
) -> torch.Tensor:
    """Attend, with one softmax, to the chosen blocks and the local window, by gathers.

    Exactly ``scaled_dot_product_attention(q, k, v, attn_mask=topk_block_mask(...))``, but
    each query block reads only its ``top_k`` blocks and ``window + block_size`` local
    positions, never the ``N x N`` scores.

    Args:
        q: queries ``(B, H, N, d)``.
        k: keys ``(B, H_kv, N, d)``, ``H_kv`` dividing ``H`` (grouped-query attention).
        v: values ``(B, H_kv, N, d_v)``.
        block_size: positions per block, > 0; ``N`` need not be a multiple.
        top_k: blocks chosen per query block, 1 .. ``N // block_size``.
        window: positions before the query always seen, >= 0.

    Returns:
        ``(B, H, N, d_v)``.

    Introduced in :ref:`sec-learned-sparse`.
    """
    _check_qk(q, k, v)
    bsz, h, n, d = q.shape
    hk, bs = k.shape[1], block_size
    _check_sizes(n, bs, top_k, window)
    index, valid = select_blocks(q, k, bs, top_k)  # (B, H_kv, nq, top_k)
    nq, nb, g = index.shape[2], n // bs, h // hk
    qb = F.pad(q, (0, 0, 0, nq * bs - n)).unflatten(1, (hk, g)).unflatten(-2, (nq, bs))
    pos = torch.arange(nq * bs, device=q.device).view(nq, bs, 1)  # query positions
    # selected blocks: (B, H_kv, nq, top_k * bs, d), each key block gathered once per group
    bi = torch.arange(bsz, device=q.device).view(-1, 1, 1, 1)
    hi = torch.arange(hk, device=q.device).view(1, -1, 1, 1)
    k_sel = k[:, :, : nb * bs].unflatten(2, (nb, bs))[bi, hi, index].flatten(3, 4)
    v_sel = v[:, :, : nb * bs].unflatten(2, (nb, bs))[bi, hi, index].flatten(3, 4)
    key_pos = (index.unsqueeze(-1) * bs + torch.arange(bs, device=q.device)).flatten(-2)
    keep_sel = valid.repeat_interleave(bs, -1).unsqueeze(-2) & (
        key_pos.unsqueeze(-2) < pos - window  # the window's keys are counted below, once
    )  # (B, H_kv, nq, bs, top_k * bs)
    # local span of each query block: positions qb * bs - window .. qb * bs + bs - 1
    span = window + bs
    k_loc = F.pad(k, (0, 0, window, nq * bs - n)).unfold(2, span, bs).transpose(-1, -2)
    v_loc = F.pad(v, (0, 0, window, nq * bs - n)).unfold(2, span, bs).transpose(-1, -2)
    loc_pos = torch.arange(nq, device=q.device).view(nq, 1, 1) * bs - window
    loc_pos = loc_pos + torch.arange(span, device=q.device)  # (nq, 1, span)
    keep_loc = (loc_pos <= pos) & (loc_pos >= pos - window) & (loc_pos >= 0)  # (nq, bs, span)
    qb = qb / math.sqrt(d)
    s_sel = qb @ k_sel.unsqueeze(2).transpose(-1, -2)  # (B, H_kv, g, nq, bs, top_k * bs)
    s_loc = qb @ k_loc.unsqueeze(2).transpose(-1, -2)  # (B, H_kv, g, nq, bs, span)
    s_sel = s_sel.masked_fill_(~keep_sel.unsqueeze(2), -math.inf)
    s_loc = s_loc.masked_fill_(~keep_loc, -math.inf)
    p = torch.softmax(torch.cat([s_sel, s_loc], -1), -1)  # one softmax over the union
    out = p[..., : s_sel.shape[-1]] @ v_sel.unsqueeze(2) + p[..., s_sel.shape[-1] :] @ (
        v_loc.unsqueeze(2)
    )  # (B, H_kv, g, nq, bs, d_v)
    result: torch.Tensor = out.flatten(3, 4)[..., :n, :].flatten(1, 2)  # (B, H, N, d_v)
    return result


class NativeSparseAttention(GroupedQueryAttention):
    """NSA's three branches, compressed, selected and sliding, mixed by learned gates.

    Each branch is a causal softmax attention of the same queries: over the mean-pooled
    keys and values of complete blocks, over the ``top_k`` blocks :func:`select_blocks`
    chooses (and the query itself), and over a window of ``window`` earlier positions. A
    sigmoid gate per head and branch, computed from the layer's input, weighs the three.
    Use it as ``DecoderLM(..., attention=lambda i: NativeSparseAttention(...))``; it keeps
    no cache (training and full-sequence evaluation only).

    Introduced in :ref:`sec-learned-sparse`.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        block_size: int,
        top_k: int,
        window: int,
        num_kv_heads: int | None = None,
    ) -> None:
        """Create the projections and the gates.

        Args:
            d_model: size of the model's vectors, divisible by ``num_heads``.
            num_heads: query heads, > 0.
            block_size: positions per block, > 0.
            top_k: blocks the selected branch reads per query block, > 0.
            window: positions before the query the sliding branch sees, >= 0.
            num_kv_heads: key/value heads dividing ``num_heads``; ``None``: ``num_heads``.
        """
        _check_sizes(block_size * top_k, block_size, top_k, window)
        super().__init__(d_model, num_heads, num_kv_heads)
        self.block_size, self.top_k, self.window = block_size, top_k, window
        self.gate = nn.Linear(d_model, 3 * num_heads)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        cache: object = None,
    ) -> torch.Tensor:
        """Attend with the three gated branches.

        Args:
            x: ``(B, N, d_model)``.
            rotary: ``(cos, sin)`` tables of the positions.
            cache: must be ``None``: this layer keeps no cache.

        Returns:
            ``(B, N, d_model)``.
        """
        if cache is not None:
            raise ValueError("NativeSparseAttention keeps no cache: call it with cache=None")
        q, k, v = self._project(x)
        q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        n, bs = q.shape[-2], self.block_size
        group = self.num_heads // self.num_kv_heads
        pos = torch.arange(n, device=x.device)
        # compressed: block b is visible once it is complete, (b + 1) * bs - 1 <= i
        nb = n // bs
        kc, vc = compress_blocks(k, bs), compress_blocks(v, bs)  # (B, H_kv, nb, dh)
        seen = (torch.arange(nb, device=x.device) + 1) * bs - 1 <= pos[:, None]  # (N, nb)
        cmp = F.scaled_dot_product_attention(
            q, repeat_kv(kc, group), repeat_kv(vc, group), attn_mask=seen
        ).nan_to_num(0.0)  # a query with no complete block gets zeros
        top_k = min(self.top_k, nb)
        if top_k > 0:
            mask = topk_block_mask(q, k, bs, top_k, 0)  # (B, H, N, N), the query itself too
        else:
            mask = (pos[None, :] == pos[:, None]).expand(*q.shape[:2], n, n)
        kr, vr = repeat_kv(k, group), repeat_kv(v, group)
        sel = F.scaled_dot_product_attention(q, kr, vr, attn_mask=mask)
        local = (pos[None, :] <= pos[:, None]) & (pos[None, :] >= pos[:, None] - self.window)
        slide = F.scaled_dot_product_attention(q, kr, vr, attn_mask=local)
        gates = torch.sigmoid(self.gate(x)).unflatten(-1, (3, self.num_heads))  # (B, N, 3, H)
        gates = gates.permute(2, 0, 3, 1).unsqueeze(-1)  # (3, B, H, N, 1)
        return self._merge(gates[0] * cmp + gates[1] * sel + gates[2] * slide)
