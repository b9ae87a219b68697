"""Show, Attend and Tell (Xu et al., 2015), small: a CNN feature grid and a GRU that attends.

The encoder turns an image into a grid of feature vectors, one per cell, each extended with
the cell's ``(x, y)`` coordinates so that "where" can travel in a context vector. At every
step the decoder scores every cell with additive attention
(:class:`attention_book.attention.AdditiveAttention`), using its previous state as the
query, averages the cells into a context vector, and feeds the context and the previous
word to a GRU cell; the new state and the context predict the next word. The weights of
step ``t`` are those that produced word ``t``: the "where it looked" of that word.

Token ids follow :mod:`attention_book.data`: PAD 0, BOS 1, EOS 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import _validate
from ..attention import AdditiveAttention
from ..data import BOS_ID, EOS_ID, PAD_ID
from .cnn_attention import conv_backbone

__all__ = ["ShowAttendTell", "attention_peaks", "exact_match"]


class ShowAttendTell(nn.Module):
    """A captioner: CNN feature grid, additive attention over the cells, GRU decoder.

    ``forward(images, tgt_in)`` computes logits with teacher forcing; ``greedy_decode``
    generates. Both leave the attention weights ``(B, T, h * w)`` in ``last_attention``.

    Introduced in :ref:`sec-captioning`.
    """

    def __init__(
        self,
        vocab_size: int,
        widths: Sequence[int] = (16, 32, 64),
        pool: Sequence[bool] = (True, True, False),
        embed_dim: int = 32,
        hidden_dim: int = 96,
        attention_dim: int = 64,
        max_len: int = 8,
        pad_id: int = PAD_ID,
        bos_id: int = BOS_ID,
        eos_id: int = EOS_ID,
    ) -> None:
        """Create the encoder, the attention, the GRU cell and the output layer.

        Args:
            vocab_size: number of token ids, specials included, > 3.
            widths: channels of the encoder's 3x3 convolutions.
            pool: after which convolutions to halve the grid (two halvings: 32 -> 8).
            embed_dim: size of a word embedding, > 0.
            hidden_dim: size of the GRU state, > 0.
            attention_dim: hidden size of the additive attention, > 0.
            max_len: the longest caption (without EOS) the model is asked to produce, > 0.
            pad_id: the padding id.
            bos_id: the id that starts every decoder input.
            eos_id: the id that ends every caption.
        """
        super().__init__()
        self.vocab_size = _validate.positive_int("vocab_size", vocab_size)
        if vocab_size <= 3:
            raise ValueError(f"vocab_size must be > 3 (PAD, BOS, EOS and words), got {vocab_size}")
        for name, value in (("embed_dim", embed_dim), ("hidden_dim", hidden_dim)):
            _validate.positive_int(name, value)
        self.max_len = _validate.positive_int("max_len", max_len)
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.encoder = conv_backbone(3, widths, pool)
        self.feature_dim = widths[-1] + 2  # + the (x, y) of each cell
        self.init_hidden = nn.Linear(self.feature_dim, hidden_dim)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.attention = AdditiveAttention(hidden_dim, self.feature_dim, attention_dim)
        self.cell = nn.GRUCell(embed_dim + self.feature_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim + self.feature_dim, vocab_size)
        self.last_attention: torch.Tensor | None = None
        self.grid: tuple[int, int] | None = None

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Encode images into a grid of feature vectors, one per cell, with coordinates.

        Args:
            images: ``(B, 3, H, W)``.

        Returns:
            ``(B, h * w, feature_dim)``, the cells in row-major order; ``self.grid`` is
            set to ``(h, w)``.
        """
        _validate.tensor("images", images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
        grid = self.encoder(images)  # (B, C, h, w)
        b, _, h, w = grid.shape
        ys = torch.linspace(-1, 1, h, device=grid.device, dtype=grid.dtype)
        xs = torch.linspace(-1, 1, w, device=grid.device, dtype=grid.dtype)
        coords = torch.stack(torch.meshgrid(xs, ys, indexing="xy"))  # (2, h, w): x then y
        grid = torch.cat([grid, coords.expand(b, 2, h, w)], dim=1)  # (B, C + 2, h, w)
        self.grid = (h, w)
        return grid.flatten(2).transpose(1, 2)  # (B, h * w, C + 2)

    def step(
        self, token: torch.Tensor, hidden: torch.Tensor, cells: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Take one decoder step: attend with the previous state, update it, predict a word.

        Args:
            token: ``(B,)`` the previous word's id.
            hidden: ``(B, hidden_dim)`` the previous state, the attention's query.
            cells: ``(B, S, feature_dim)`` from :meth:`features`, keys and values.

        Returns:
            ``(logits (B, vocab_size), new hidden (B, hidden_dim), weights (B, S))``.
        """
        context, weights = self.attention(hidden[:, None, :], cells, cells)  # (B, 1, F), (B, 1, S)
        context = context[:, 0]  # (B, F)
        hidden = self.cell(torch.cat([self.embed(token), context], dim=-1), hidden)
        logits = self.out(torch.cat([hidden, context], dim=-1))  # (B, V)
        return logits, hidden, weights[:, 0]

    def _start(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cells = self.features(images)  # (B, S, F)
        return cells, torch.tanh(self.init_hidden(cells.mean(dim=1)))  # (B, hidden_dim)

    def forward(self, images: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Compute the logits of every caption word, given the previous true words.

        Args:
            images: ``(B, 3, H, W)``.
            tgt_in: ``(B, T)`` long, BOS followed by the caption, padded.

        Returns:
            Logits ``(B, T, vocab_size)``.
        """
        if tgt_in.ndim != 2 or tgt_in.dtype != torch.long or len(tgt_in) != len(images):
            raise ValueError(
                f"tgt_in must be (B, T) long with B = {len(images)} images, got "
                f"{tgt_in.dtype} {tuple(tgt_in.shape)}"
            )
        cells, hidden = self._start(images)
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):
            step_logits, hidden, step_weights = self.step(tgt_in[:, t], hidden, cells)
            logits.append(step_logits)
            weights.append(step_weights)
        self.last_attention = torch.stack(weights, dim=1).detach()  # (B, T, S)
        return torch.stack(logits, dim=1)  # (B, T, V)

    @torch.no_grad()
    def greedy_decode(self, images: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
        """Caption images word by word, each time taking the most likely word.

        Args:
            images: ``(B, 3, H, W)``.
            max_len: the most tokens to generate (EOS included); ``None`` means the
                model's ``max_len + 1``.

        Returns:
            ``(B, L)`` ids without BOS, ``L <= max_len``; after a row's EOS, PAD.
            ``last_attention`` holds the weights ``(B, L, h * w)`` of every step.
        """
        steps = self.max_len + 1 if max_len is None else _validate.positive_int("max_len", max_len)
        cells, hidden = self._start(images)
        token = torch.full((len(images),), self.bos_id, dtype=torch.long, device=images.device)
        done = torch.zeros(len(images), dtype=torch.bool, device=images.device)
        tokens, weights = [], []
        for _ in range(steps):
            logits, hidden, step_weights = self.step(token, hidden, cells)
            token = logits.argmax(dim=-1).masked_fill(done, self.pad_id)  # (B,)
            tokens.append(token)
            weights.append(step_weights)
            done |= token == self.eos_id
            if done.all():
                break
        self.last_attention = torch.stack(weights, dim=1)  # (B, L, S)
        return torch.stack(tokens, dim=1)  # (B, L)


@torch.no_grad()
def exact_match(
    model: ShowAttendTell, images: torch.Tensor, tgt_out: torch.Tensor, batch_size: int = 500
) -> torch.Tensor:
    """Caption every image greedily and say which captions equal their target exactly.

    Args:
        model: a trained captioner; it is put in eval mode.
        images: ``(B, 3, H, W)``.
        tgt_out: ``(B, T)`` target ids followed by EOS, padded with PAD.
        batch_size: images captioned at once, > 0.

    Returns:
        ``(B,)`` boolean, True where the caption (up to and including EOS) is right.

    Introduced in :ref:`sec-captioning`.
    """
    batch_size = _validate.positive_int("batch_size", batch_size)
    if tgt_out.ndim != 2 or len(tgt_out) != len(images):
        raise ValueError(
            f"tgt_out must be (B, T) with B = {len(images)} images, got {tuple(tgt_out.shape)}"
        )
    model.eval()
    correct = []
    for start in range(0, len(images), batch_size):
        target = tgt_out[start : start + batch_size]
        decoded = model.greedy_decode(images[start : start + batch_size], target.shape[1])
        width = max(decoded.shape[1], target.shape[1])
        decoded = nn.functional.pad(decoded, (0, width - decoded.shape[1]), value=model.pad_id)
        target = nn.functional.pad(target, (0, width - target.shape[1]), value=model.pad_id)
        correct.append((decoded == target.to(decoded.device)).all(dim=1).cpu())
    return torch.cat(correct)


def attention_peaks(weights: torch.Tensor, grid: tuple[int, int], image_size: int) -> torch.Tensor:
    """Find where each attention map peaks, as the pixel centre of its heaviest cell.

    Args:
        weights: ``(..., h * w)`` attention weights over the cells of an ``(h, w)`` grid.
        grid: ``(h, w)``.
        image_size: side of the (square) image the grid covers, in pixels.

    Returns:
        ``(..., 2)`` float, the ``(x, y)`` pixel coordinates of each peak's cell centre.

    Introduced in :ref:`sec-captioning`.
    """
    h, w = grid
    if weights.shape[-1] != h * w:
        raise ValueError(
            f"weights must end in h * w = {h * w} cells for grid {grid}, got {tuple(weights.shape)}"
        )
    image_size = _validate.positive_int("image_size", image_size)
    index = weights.argmax(dim=-1)  # (...)
    row, col = index // w, index % w
    return torch.stack([(col + 0.5) * image_size / w, (row + 0.5) * image_size / h], dim=-1)
