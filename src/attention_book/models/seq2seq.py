"""GRU encoder-decoders, with and without attention, and how to score them.

One model, :class:`GRUSeq2Seq`, in three flavours that differ only in the context vector the
decoder reads at each step:

- ``attention="none"``: the encoder's final state, the same fixed vector at every step;
- ``attention="additive"``: a fresh weighted average of all encoder states at every step,
  scored by Bahdanau's ``w^T tanh(W_q s + W_k h)``;
- ``attention="multiplicative"``: the same, scored by Luong's bilinear ``s^T W h``.

The decoder attends in Luong's order: its GRU takes a step, and the *new* state is the query.
The attention then never feeds back into the recurrence, so with teacher forcing the GRU runs
over the whole target in one call and the attention of all steps is one batched product.
The score functions are those of :mod:`attention_book.attention`. Token ids follow
:mod:`attention_book.data`: PAD 0, BOS 1, EOS 2.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .. import _validate
from ..attention import AdditiveAttention, BilinearAttention, softmax
from ..data import BOS_ID, EOS_ID, PAD_ID

__all__ = ["GRUSeq2Seq", "accuracy_by_length", "attention_step", "exact_match"]

ATTENTIONS = ("none", "additive", "multiplicative")


def attention_step(
    cell: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    attention: AdditiveAttention | BilinearAttention,
    embedded: torch.Tensor,
    hidden: torch.Tensor,
    encoder_outputs: torch.Tensor,
    mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Take one decoder step with attention: update the state, then attend with the new state.

    Args:
        cell: the decoder's recurrent cell, ``cell(embedded, hidden) -> new hidden``, such as
            an ``nn.GRUCell(embed_dim, d)``.
        attention: scores queries ``(B, 1, d)`` against keys ``(B, S, d_enc)``.
        embedded: ``(B, embed_dim)``, the embedding of the previous output token.
        hidden: ``(B, d)``, the previous decoder state.
        encoder_outputs: ``(B, S, d_enc)``, the encoder states, both keys and values.
        mask: ``(B, S)`` boolean, True for real source tokens, False for padding.

    Returns:
        ``(new_hidden (B, d), context (B, d_enc), weights (B, S))``; the weights of padding
        positions are 0 and the others sum to one.

    Introduced in :ref:`sec-bahdanau-luong`.
    """
    new_hidden = cell(embedded, hidden)  # (B, d): the query
    scores = attention.scores(new_hidden[:, None, :], encoder_outputs)[:, 0]  # (B, S)
    weights = softmax(scores, dim=-1, mask=mask)  # (B, S), zero on padding
    context = (weights[:, None, :] @ encoder_outputs)[:, 0]  # (B, d_enc)
    return new_hidden, context, weights


class GRUSeq2Seq(nn.Module):
    """A GRU encoder-decoder whose decoder reads a fixed or an attended context vector.

    ``forward(src, tgt_in)`` computes logits with teacher forcing; ``greedy_decode`` generates.
    With attention, ``last_attention`` holds the weights ``(B, T, S)`` of the last call.

    Introduced in :ref:`sec-seq2seq`; attention in :ref:`sec-bahdanau-luong`.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        embed_dim: int = 32,
        hidden_dim: int = 64,
        attention: str = "additive",
        attention_dim: int | None = None,
        max_len: int = 64,
        pad_id: int = PAD_ID,
        bos_id: int = BOS_ID,
        eos_id: int = EOS_ID,
    ) -> None:
        """Create the embeddings, the encoder and decoder GRUs and the output layer.

        Args:
            src_vocab_size: number of source ids (specials included), > 0.
            tgt_vocab_size: number of target ids (specials included), > 0.
            embed_dim: size of the token embeddings, > 0.
            hidden_dim: size of the encoder and decoder states, > 0.
            attention: ``"none"`` (fixed context), ``"additive"`` or ``"multiplicative"``.
            attention_dim: hidden size of the additive score, > 0; ``None`` means
                ``hidden_dim``. Its cost grows as ``B * T * S * attention_dim``.
            max_len: the longest source and target accepted, > 0.
            pad_id: the padding id of both vocabularies.
            bos_id: the id that starts every decoder input.
            eos_id: the id that ends every target.
        """
        super().__init__()
        self.src_vocab_size = _validate.positive_int("src_vocab_size", src_vocab_size)
        self.tgt_vocab_size = _validate.positive_int("tgt_vocab_size", tgt_vocab_size)
        _validate.positive_int("embed_dim", embed_dim)
        _validate.positive_int("hidden_dim", hidden_dim)
        self.max_len = _validate.positive_int("max_len", max_len)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.src_embed = nn.Embedding(src_vocab_size, embed_dim, padding_idx=pad_id)
        self.encoder = nn.GRU(embed_dim, hidden_dim, batch_first=True)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=pad_id)
        self.attention: AdditiveAttention | BilinearAttention | None = None
        if attention == "additive":
            width = hidden_dim if attention_dim is None else attention_dim
            self.attention = AdditiveAttention(hidden_dim, hidden_dim, width)
        elif attention == "multiplicative":
            self.attention = BilinearAttention(hidden_dim, hidden_dim)
        self.decoder = nn.GRU(embed_dim, hidden_dim, batch_first=True)  # starts from final
        self.out = nn.Linear(2 * hidden_dim, tgt_vocab_size)  # reads [state; context]
        self.last_attention: torch.Tensor | None = None

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the encoder over a padded batch of sources.

        Args:
            src: ``(B, S)`` source ids, padded with ``pad_id`` at the end.

        Returns:
            ``(outputs (B, S, d), final (B, d), mask (B, S))``: the state after each token,
            the state after each source's last real token, and True for real tokens.
        """
        _check_ids("src", src, self.src_vocab_size, self.max_len, self.pad_id)
        mask = src != self.pad_id  # (B, S)
        outputs, _ = self.encoder(self.src_embed(src))  # (B, S, d)
        last = mask.sum(dim=1) - 1  # (B,) index of each source's last real token
        final = outputs[torch.arange(len(src), device=src.device), last]  # (B, d)
        return outputs, final, mask

    def cell(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Advance the decoder GRU by one step.

        Args:
            x: ``(B, embed_dim)`` the embedded previous token.
            hidden: ``(B, d)`` the previous state.

        Returns:
            The new state ``(B, d)``.
        """
        _, new = self.decoder(x[:, None, :], hidden[None].contiguous())  # one time step
        return new[0]  # type: ignore[no-any-return]

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Compute the logits of every target position with teacher forcing.

        Args:
            src: ``(B, S)`` source ids, padded with ``pad_id``.
            tgt_in: ``(B, T)`` ``bos_id`` followed by the target without its last token.

        Returns:
            Logits ``(B, T, tgt_vocab_size)``.
        """
        _check_ids("tgt_in", tgt_in, self.tgt_vocab_size, self.max_len + 1, None)
        if tgt_in.shape[0] != src.shape[0]:
            raise ValueError(
                f"src and tgt_in must share the batch size, got {tuple(src.shape)} and "
                f"{tuple(tgt_in.shape)}"
            )
        outputs, final, mask = self.encode(src)
        inputs = self.tgt_embed(tgt_in)  # (B, T, embed_dim)
        states, _ = self.decoder(inputs, final[None].contiguous())  # (B, T, d), all steps
        if self.attention is None:  # the same fixed vector at every step
            context, self.last_attention = final[:, None, :].expand_as(states), None
        else:  # every step's query attends at once: (B, T, d) against (B, S, d)
            context, weights = self.attention(states, outputs, outputs, mask=mask[:, None, :])
            self.last_attention = weights.detach()  # (B, T, S)
        return self.out(torch.cat([states, context], dim=-1))  # type: ignore[no-any-return]

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, max_len: int) -> torch.Tensor:
        """Generate each target token as the most likely one, until EOS or ``max_len`` steps.

        Args:
            src: ``(B, S)`` source ids, padded with ``pad_id``.
            max_len: the most tokens to generate, 1 to the model's ``max_len`` + 1.

        Returns:
            ``(B, L)`` generated ids without BOS, ``L <= max_len``; after a row's EOS, PAD.
        """
        max_len = _validate.positive_int("max_len", max_len)
        if max_len > self.max_len + 1:
            raise ValueError(
                f"max_len must be at most the model's max_len + 1 = {self.max_len + 1} "
                f"(a target and its EOS), got {max_len}"
            )
        outputs, final, mask = self.encode(src)
        hidden, context = final, final
        token = torch.full((len(src),), self.bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(len(src), dtype=torch.bool, device=src.device)
        tokens, weights = [], []
        for _ in range(max_len):
            embedded = self.tgt_embed(token)  # (B, embed_dim)
            if self.attention is None:
                hidden = self.cell(embedded, hidden)
            else:
                hidden, context, step_weights = attention_step(
                    self.cell, self.attention, embedded, hidden, outputs, mask
                )
                weights.append(step_weights)
            logits = self.out(torch.cat([hidden, context], dim=-1))  # (B, V)
            token = logits.argmax(dim=-1).masked_fill(done, self.pad_id)  # (B,)
            tokens.append(token)
            done |= token == self.eos_id
            if done.all():
                break
        self.last_attention = torch.stack(weights, dim=1) if weights else None
        return torch.stack(tokens, dim=1)  # (B, L)


@torch.no_grad()
def exact_match(
    model: nn.Module, src: torch.Tensor, tgt_out: torch.Tensor, batch_size: int = 500
) -> torch.Tensor:
    """Decode every source greedily and say which outputs equal their target exactly.

    Works for any model with ``greedy_decode(src, max_len)``, the transformer included.

    Args:
        model: a sequence-to-sequence model; it is put in eval mode.
        src: ``(B, S)`` source ids, padded.
        tgt_out: ``(B, T)`` target ids followed by EOS, padded with PAD.
        batch_size: sources decoded at once, > 0.

    Returns:
        ``(B,)`` boolean, True where the decoded sequence (up to and including its EOS)
        equals the target.

    Introduced in :ref:`sec-seq2seq`.
    """
    batch_size = _validate.positive_int("batch_size", batch_size)
    if src.ndim != 2 or tgt_out.ndim != 2 or len(src) != len(tgt_out):
        raise ValueError(
            f"src and tgt_out must be (B, S) and (B, T) with one B, got {tuple(src.shape)} "
            f"and {tuple(tgt_out.shape)}"
        )
    model.eval()
    pad = int(getattr(model, "pad_id", PAD_ID))
    correct = []
    for start in range(0, len(src), batch_size):
        target = tgt_out[start : start + batch_size]
        decode = getattr(model, "greedy_decode", None)
        if not callable(decode):
            raise TypeError(f"model must have a greedy_decode method, got {type(model).__name__}")
        decoded = decode(src[start : start + batch_size], max_len=target.shape[1])
        width = max(decoded.shape[1], target.shape[1])
        decoded = nn.functional.pad(decoded, (0, width - decoded.shape[1]), value=pad)
        target = nn.functional.pad(target, (0, width - target.shape[1]), value=pad)
        correct.append((decoded == target.to(decoded.device)).all(dim=1).cpu())
    return torch.cat(correct)


def accuracy_by_length(
    correct: torch.Tensor, lengths: torch.Tensor, edges: Sequence[int]
) -> list[float]:
    """Average ``correct`` within length buckets ``[edges[i], edges[i + 1])``.

    Args:
        correct: ``(B,)`` boolean, e.g. from :func:`exact_match`.
        lengths: ``(B,)`` integer length of each example.
        edges: increasing bucket edges; ``len(edges) - 1`` buckets, none of them empty.

    Returns:
        The fraction correct in each bucket.

    Introduced in :ref:`sec-seq2seq`.
    """
    if correct.shape != lengths.shape or correct.ndim != 1:
        raise ValueError(
            f"correct and lengths must both be (B,), got {tuple(correct.shape)} and "
            f"{tuple(lengths.shape)}"
        )
    if len(edges) < 2 or any(a >= b for a, b in itertools.pairwise(edges)):
        raise ValueError(f"edges must hold at least two increasing values, got {list(edges)}")
    accuracies = []
    for low, high in itertools.pairwise(edges):
        inside = (lengths >= low) & (lengths < high)
        if not inside.any():
            raise ValueError(f"no example has a length in the bucket [{low}, {high})")
        accuracies.append(correct[inside].float().mean().item())
    return accuracies


def _check_ids(
    name: str, ids: torch.Tensor, vocab_size: int, max_len: int, pad_id: int | None
) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or ids.ndim != 2:
        got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids)
        raise ValueError(f"{name} must be a (B, N) tensor of torch.long token ids, got {got}")
    if ids.shape[0] == 0 or ids.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one token per row, got {tuple(ids.shape)}")
    if ids.shape[1] > max_len:
        raise ValueError(f"{name} has {ids.shape[1]} positions, more than max_len={max_len}")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(
            f"{name} must hold ids in [0, vocab_size={vocab_size}), got ids from "
            f"{int(ids.min())} to {int(ids.max())}"
        )
    if pad_id is not None and (ids[:, 0] == pad_id).any():
        raise ValueError(f"{name} has an empty sequence: a row starts with the padding id")
