"""The DETR model: a CNN grid with 2-D position codes, learned object queries, a decoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ... import _validate
from ..cnn_attention import conv_backbone
from ..transformer import Decoder, sinusoidal_positions

__all__ = ["DETR"]


class DETR(nn.Module):
    """A DEtection TRansformer: CNN features, learned object queries, a decoder, two heads.

    ``forward(images)`` returns ``(logits (B, Q, num_classes + 1), boxes (B, Q, 4))``, the
    boxes as ``(cx, cy, w, h)`` in ``[0, 1]``; the last class is "no object". After a
    forward pass, ``cross_attention()`` gives each query's attention over the grid.

    The package's decoder layer masks its self-attention causally, so query ``i`` sees the
    queries before it only; DETR's queries see each other in full. Either way a query can
    learn not to repeat what another one found.

    Introduced in :ref:`sec-detection`.
    """

    def __init__(
        self,
        num_classes: int,
        num_queries: int = 6,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int = 128,
        widths: Sequence[int] = (16, 32, 64),
        pool: Sequence[bool] = (True, True, False),
    ) -> None:
        """Create the backbone, the position codes, the queries, the decoder and the heads.

        Args:
            num_classes: object classes, > 0, not counting "no object".
            num_queries: object queries ``Q``, > 0: the most objects one image can hold.
            d_model: size of the decoder's vectors, > 0, divisible by ``num_heads``, even.
            num_heads: attention heads, > 0.
            num_layers: decoder layers, > 0.
            d_ff: hidden size of the decoder's feed-forward layers, > 0.
            widths: channels of the backbone's 3x3 convolutions.
            pool: after which convolutions to halve the grid.
        """
        super().__init__()
        self.num_classes = _validate.positive_int("num_classes", num_classes)
        self.num_queries = _validate.positive_int("num_queries", num_queries)
        self.d_model = _validate.positive_int("d_model", d_model)
        if d_model % 4:
            raise ValueError(f"d_model must be divisible by 4 (2-D sine codes), got {d_model}")
        self.backbone = conv_backbone(3, widths, pool)
        self.input_proj = nn.Conv2d(widths[-1], d_model, kernel_size=1)
        self.queries = nn.Parameter(torch.randn(num_queries, d_model))
        self.decoder = Decoder(d_model, num_heads, num_layers, d_ff)
        self.class_head = nn.Linear(d_model, num_classes + 1)
        self.box_head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, 4))
        self.grid: tuple[int, int] | None = None

    def positions(self, h: int, w: int) -> torch.Tensor:
        """Build the 2-D position codes of an ``(h, w)`` grid: row codes next to column codes.

        Args:
            h: rows of the grid, > 0.
            w: columns of the grid, > 0.

        Returns:
            ``(h * w, d_model)``, in row-major order.
        """
        half = self.d_model // 2
        rows = sinusoidal_positions(h, half)[:, None, :].expand(h, w, half)
        cols = sinusoidal_positions(w, half)[None, :, :].expand(h, w, half)
        return torch.cat([rows, cols], dim=-1).reshape(h * w, self.d_model)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict one class and one box per query.

        Args:
            images: ``(B, 3, H, W)``.

        Returns:
            ``(logits (B, Q, num_classes + 1), boxes (B, Q, 4))``, boxes as ``(cx, cy, w,
            h)`` in ``[0, 1]``.
        """
        _validate.tensor("images", images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
        features = self.input_proj(self.backbone(images))  # (B, d_model, h, w)
        b, _, h, w = features.shape
        self.grid = (h, w)
        position = self.positions(h, w).to(features)  # (h * w, d_model)
        memory = features.flatten(2).transpose(1, 2) + position  # (B, h * w, d_model)
        queries = self.queries.expand(b, -1, -1)  # (B, Q, d_model)
        hidden = self.decoder(queries, memory)  # (B, Q, d_model)
        return self.class_head(hidden), self.box_head(hidden).sigmoid()

    def cross_attention(self, layer: int = -1) -> torch.Tensor:
        """Return each query's cross-attention over the grid, averaged over the heads.

        Args:
            layer: which decoder layer, an index into ``decoder.layers``.

        Returns:
            ``(B, Q, h, w)`` weights of the last forward pass; each map sums to one.
        """
        decoder_layer = self.decoder.layers[layer]
        weights = getattr(decoder_layer, "cross_attention_weights", None)
        if not isinstance(weights, torch.Tensor) or self.grid is None:
            raise RuntimeError("no attention weights yet: run a forward pass first")
        b, _, q, _ = weights.shape
        return weights.mean(dim=1).reshape(b, q, *self.grid)
