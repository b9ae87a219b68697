"""Multi-query associative recall, recurrent attention layers and the state each layer keeps.

The data of Zoology's recall task (:func:`associative_recall`), one attention module for the
four recurrent kinds of :mod:`attention_book.modern.linear` (:class:`RecurrentAttention`:
linear, gated, delta and gated delta) and the bytes each kind of layer keeps while it
generates (:func:`layer_state_bytes`): a fixed matrix per head, a window of positions, or a
cache that grows with the sequence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import _validate
from ..efficient import KVCache, sparse_attention_mask
from .linear import delta_rule_attention, gated_linear_attention

__all__ = [
    "KINDS",
    "RECURRENT_KINDS",
    "RecurrentAttention",
    "associative_recall",
    "layer_state_bytes",
]

#: The recurrent kinds of :class:`RecurrentAttention`: a fixed state per head.
RECURRENT_KINDS = ("linear", "gated", "delta", "gated_delta")
#: Every kind of :class:`RecurrentAttention`: softmax over a growing cache or a window, too.
KINDS = ("softmax", "window", *RECURRENT_KINDS)
IGNORE_INDEX = -100  # the default ignore_index of F.cross_entropy


def associative_recall(
    num_examples: int,
    num_pairs: int,
    *,
    num_queries: int,
    vocab_size: int,
    seq_len: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw multi-query associative recall sequences: key-value pairs, then keys to look up.

    Token 0 pads. Keys come from ``1 .. K`` and values from ``K + 1 .. vocab_size - 1`` with
    ``K = (vocab_size - 1) // 2``. Each sequence holds ``num_pairs`` pairs ``k v`` with
    distinct keys, then ``num_queries`` of those keys (distinct, in random order), then
    padding up to ``seq_len``. The target at a query is its key's value; everywhere else it
    is -100 (``F.cross_entropy``'s ``ignore_index``).

    Args:
        num_examples: sequences, > 0.
        num_pairs: key-value pairs per sequence, > 0, at most ``K``.
        num_queries: queries per sequence, > 0, at most ``num_pairs``.
        vocab_size: token ids, > 2.
        seq_len: positions per sequence, at least ``2 * num_pairs + num_queries``.
        generator: the random draws; ``None`` uses torch's global generator.

    Returns:
        ``(tokens, targets)``, both ``(num_examples, seq_len)`` int64.

    Introduced in :ref:`sec-fixed-state-recall`.
    """
    count = _validate.positive_int("num_examples", num_examples)
    pairs = _validate.positive_int("num_pairs", num_pairs)
    queries = _validate.positive_int("num_queries", num_queries)
    vocab = _validate.positive_int("vocab_size", vocab_size)
    length = _validate.positive_int("seq_len", seq_len)
    if vocab < 3:
        raise ValueError(f"vocab_size must be > 2 (padding, keys, values), got {vocab}")
    num_keys = (vocab - 1) // 2
    if pairs > num_keys:
        raise ValueError(
            f"num_pairs must be at most the {num_keys} keys of vocab_size={vocab}, got {pairs}"
        )
    if queries > pairs:
        raise ValueError(f"num_queries must be at most num_pairs={pairs}, got {queries}")
    if length < 2 * pairs + queries:
        raise ValueError(
            f"seq_len must hold 2 * num_pairs + num_queries = {2 * pairs + queries} "
            f"positions, got {length}"
        )
    gen = generator
    keys = torch.rand(count, num_keys, generator=gen).argsort(-1)[:, :pairs] + 1  # (B, P)
    values = torch.randint(num_keys + 1, vocab, (count, pairs), generator=gen)  # (B, P)
    asked = torch.rand(count, pairs, generator=gen).argsort(-1)[:, :queries]  # (B, Q)
    tokens = torch.zeros(count, length, dtype=torch.long)
    targets = torch.full((count, length), IGNORE_INDEX, dtype=torch.long)
    tokens[:, 0 : 2 * pairs : 2], tokens[:, 1 : 2 * pairs : 2] = keys, values
    end = 2 * pairs + queries
    tokens[:, 2 * pairs : end] = keys.gather(1, asked)
    targets[:, 2 * pairs : end] = values.gather(1, asked)
    return tokens, targets


def layer_state_bytes(
    kind: str,
    num_heads: int,
    head_dim: int,
    length: int,
    *,
    window: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> int:
    """Count the bytes one layer keeps for one sequence after ``length`` positions.

    ``"softmax"`` caches a key and a value per head and position (``2 H d N``); ``"window"``
    the same for at most ``window`` positions (``2 H d min(w, N)``); a recurrent kind
    (``"linear"``, ``"gated"``, ``"delta"``, ``"gated_delta"``: ``modern.RECURRENT_KINDS``)
    one ``d x d`` state per head (``H d²``), whatever ``length``.

    Args:
        kind: ``"softmax"``, ``"window"`` or a recurrent kind.
        num_heads: heads, > 0.
        head_dim: key (= value) size per head, > 0.
        length: positions seen, > 0.
        window: positions a ``"window"`` layer keeps, > 0; only for that kind.
        dtype: the dtype of the numbers kept.

    Returns:
        The size in bytes, as an int.

    Introduced in :ref:`sec-fixed-state-recall`.
    """
    heads = _validate.positive_int("num_heads", num_heads)
    dim = _validate.positive_int("head_dim", head_dim)
    n = _validate.positive_int("length", length)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype, got {type(dtype).__name__}")
    size = torch.empty((), dtype=dtype).element_size()
    if (kind == "window") != (window is not None):
        raise ValueError(f"window must be given for kind 'window' only, got {window} for {kind!r}")
    if kind == "softmax":
        return 2 * heads * dim * n * size
    if kind == "window":
        return 2 * heads * dim * min(_validate.positive_int("window", window), n) * size
    if kind in RECURRENT_KINDS:
        return heads * dim * dim * size
    raise ValueError(f"kind must be 'softmax', 'window' or one of {RECURRENT_KINDS}, got {kind!r}")


class RecurrentAttention(nn.Module):
    """An attention layer for ``DecoderLM(attention=...)``: softmax, a window or a fixed state.

    Queries, keys and values pass a short causal convolution (kernel 4, per channel, then
    SiLU), as in DeltaNet, Gated DeltaNet and Mamba-2; it lets a position see its
    predecessor without attention. Then, by ``kind``:

    - ``"softmax"``: causal softmax attention, ``q kᵀ / √d``, over every earlier position;
    - ``"window"``: the same over the last ``window`` positions;

    and the recurrent kinds, whose heads keep a ``(d, d)`` state ``S`` (``d = d_model /
    num_heads``):

    - ``"linear"``: ``S_t = S_{t-1} + v_t k_tᵀ`` with the feature map ``elu + 1`` on ``q``
      and ``k`` and the normaliser ``q_tᵀ z_t`` (``z_t`` the sum of keys), as in
      Katharopoulos et al.;
    - ``"gated"``: ``S_t = a_t S_{t-1} + v_t k_tᵀ`` with L2-normalised ``q``, ``k`` and a
      decay per head and position ``a_t = sigmoid(w·x_t + b)`` (``log_decay = logsigmoid``);
    - ``"delta"``: DeltaNet, ``S_t = S_{t-1}(I - β_t k_t k_tᵀ) + β_t v_t k_tᵀ`` with
      L2-normalised ``q``, ``k`` and ``β_t = sigmoid(w·x_t)`` per head;
    - ``"gated_delta"``: the delta rule with the decay of ``"gated"`` (Gated DeltaNet).

    The layer ignores rotary positions (the convolution and the recurrence order the tokens;
    softmax is then position-free apart from the convolution) and has no cache
    (:meth:`new_cache` raises): the page trains and evaluates it on whole sequences.

    Introduced in :ref:`sec-fixed-state-recall`.
    """

    def __init__(self, d_model: int, num_heads: int, kind: str, window: int | None = None) -> None:
        """Create the projections, the short convolution and the gates.

        Args:
            d_model: size of the model's vectors, > 0, divisible by ``num_heads``.
            num_heads: heads, > 0.
            kind: one of ``modern.KINDS``: ``"softmax"``, ``"window"`` or a recurrent kind.
            window: positions a ``"window"`` layer sees, its own included, > 0; only for it.
        """
        super().__init__()
        d_model = _validate.positive_int("d_model", d_model)
        heads = _validate.positive_int("num_heads", num_heads)
        if d_model % heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={heads}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if (kind == "window") != (window is not None):
            raise ValueError(f"window must be given for kind 'window' only, got {window}")
        self.window = None if window is None else _validate.positive_int("window", window)
        self.kind, self.num_heads, self.head_dim = kind, heads, d_model // heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.conv = nn.Conv1d(3 * d_model, 3 * d_model, 4, groups=3 * d_model)
        # beta and decay logits, one per head, for the kinds that use them
        self.gate = nn.Linear(d_model, 2 * heads) if kind in RECURRENT_KINDS[1:] else None
        self.out = nn.Linear(d_model, d_model, bias=False)

    def new_cache(self, max_len: int) -> KVCache:
        """Refuse: this layer keeps a state, not a cache, and is run on whole sequences."""
        raise NotImplementedError("RecurrentAttention runs on whole sequences, without a cache")

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """Mix the positions of ``x`` through each head's attention or state.

        Args:
            x: ``(B, N, d_model)``.
            rotary: ignored (accepted so that ``DecoderLM`` can call every layer alike).
            cache: must be ``None``.

        Returns:
            ``(B, N, d_model)``.
        """
        if cache is not None:
            raise ValueError("RecurrentAttention keeps no cache; call it with cache=None")
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, N, d_model), got {got}")
        b, n, _ = x.shape
        qkv = F.pad(self.qkv(x).transpose(1, 2), (3, 0))  # causal: 3 earlier positions
        qkv = F.silu(self.conv(qkv)).transpose(1, 2)  # (B, N, 3 d_model)
        q, k, v = (
            t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, d)
            for t in qkv.chunk(3, dim=-1)
        )
        out: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
        if self.kind in ("softmax", "window"):
            mask = sparse_attention_mask(n, self.window or n, device=x.device)  # (N, N)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        elif self.kind == "linear":
            q, k = F.elu(q) + 1, F.elu(k) + 1
            ones = torch.ones_like(v[..., :1])  # a column of ones gives the normaliser
            no_decay = q.new_zeros(q.shape[:-1])  # (B, H, N)
            out = gated_linear_attention(q, k, torch.cat([v, ones], -1), no_decay, n)
            assert isinstance(out, torch.Tensor)
            out = out[..., :-1] / (out[..., -1:] + 1e-6)  # (B, H, N, d): normalised
        else:
            assert self.gate is not None
            beta_logit, decay_logit = self.gate(x).transpose(1, 2).chunk(2, dim=1)  # (B, H, N)
            q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
            log_decay = F.logsigmoid(decay_logit) if "gated" in self.kind else None
            if self.kind == "gated":
                assert log_decay is not None
                out = gated_linear_attention(q, k, v, log_decay, n)
            else:
                beta = torch.sigmoid(beta_logit)
                out = delta_rule_attention(q, k, v, beta, n, log_decay=log_decay)
        assert isinstance(out, torch.Tensor)
        merged: torch.Tensor = self.out(out.transpose(1, 2).reshape(b, n, -1))
        return merged
