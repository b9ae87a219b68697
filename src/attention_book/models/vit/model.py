"""The Vision Transformer classifier and a matched small CNN."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ... import _validate
from ..transformer import Encoder
from .patches import PatchEmbedding, _check_divisible, _check_images, _size_pair

__all__ = ["SmallCNN", "ViT"]


#: Position embeddings of a :class:`ViT`: a learned table per token ("1d"), learned row and
#: column tables summed ("2d"), or none.
PositionKind = Literal["1d", "2d", "none"]


class ViT(nn.Module):
    """A Vision Transformer classifier: patches, class token, positions, encoder, head.

    After a forward pass, :meth:`attention_weights` returns every layer's self-attention
    ``(num_layers, B, H, N + 1, N + 1)``; token 0 is the class token, tokens ``1..N`` the
    patches in reading order.

    Introduced in :ref:`sec-images-as-sequences`.
    """

    def __init__(
        self,
        image_size: int | tuple[int, int],
        patch_size: int,
        num_classes: int,
        in_channels: int = 1,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int = 128,
        dropout: float = 0.0,
        positions: PositionKind = "2d",
    ) -> None:
        """Create the patch embedding, class token, position embeddings, encoder and head.

        Args:
            image_size: ``H`` (square) or ``(H, W)``, multiples of ``patch_size``.
            patch_size: side ``p`` of a patch, > 0.
            num_classes: outputs of the classifier, > 0.
            in_channels: channels ``C`` of the images, > 0.
            d_model: size of the token vectors, > 0, divisible by ``num_heads``.
            num_heads: attention heads per layer, > 0.
            num_layers: encoder layers, > 0.
            d_ff: hidden size of the feed-forward layers, > 0.
            dropout: dropout on each residual branch, in ``[0, 1)``.
            positions: ``"2d"`` (a learned row table plus a learned column table),
                ``"1d"`` (a learned table with one row per token) or ``"none"``.
        """
        super().__init__()
        h, w = _size_pair("image_size", image_size)
        p = _validate.positive_int("patch_size", patch_size)
        _check_divisible(h, w, p)
        num_classes = _validate.positive_int("num_classes", num_classes)
        if positions not in ("1d", "2d", "none"):
            raise ValueError(f"positions must be '1d', '2d' or 'none', got {positions!r}")
        self.image_size, self.patch_size, self.positions = (h, w), p, positions
        self.grid = (h // p, w // p)
        self.patch_embed = PatchEmbedding(in_channels, p, d_model)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        gh, gw = self.grid
        if positions == "1d":
            self.pos_table = nn.Parameter(torch.randn(gh * gw + 1, d_model) * 0.02)
        elif positions == "2d":
            self.row_embed = nn.Parameter(torch.randn(gh, d_model) * 0.02)
            self.col_embed = nn.Parameter(torch.randn(gw, d_model) * 0.02)
            self.cls_pos = nn.Parameter(torch.zeros(d_model))
        self.encoder = Encoder(d_model, num_heads, num_layers, d_ff, dropout, norm_first=True)
        self.head = nn.Linear(d_model, num_classes)

    @property
    def num_patches(self) -> int:
        """The number of patch tokens ``N = (H / p) * (W / p)``."""
        return self.grid[0] * self.grid[1]

    def position_embeddings(self) -> torch.Tensor:
        """Return the position embedding added to each token.

        Returns:
            ``(N + 1, d_model)``: row 0 for the class token, then the patches in reading
            order (all zeros when ``positions="none"``).
        """
        d = self.cls_token.shape[-1]
        if self.positions == "1d":
            return self.pos_table
        if self.positions == "none":
            return self.cls_token.new_zeros(self.num_patches + 1, d)
        grid = self.row_embed[:, None, :] + self.col_embed[None, :, :]  # (gh, gw, d)
        return torch.cat([self.cls_pos[None], grid.reshape(-1, d)])

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Turn images into the encoder's input tokens.

        Args:
            images: ``(B, C, H, W)`` of the size given at construction.

        Returns:
            ``(B, N + 1, d_model)``: the class token, then the patches, positions added.
        """
        images = _check_images("images", images)
        if tuple(images.shape[2:]) != self.image_size:
            raise ValueError(
                f"images must be {self.image_size[0]} x {self.image_size[1]}, got shape "
                f"{tuple(images.shape)}"
            )
        patches = self.patch_embed(images)  # (B, N, d_model)
        cls = self.cls_token.expand(len(images), -1, -1)  # (B, 1, d_model)
        return torch.cat([cls, patches], dim=1) + self.position_embeddings()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Classify images from the class token's final vector.

        Args:
            images: ``(B, C, H, W)``.

        Returns:
            Logits ``(B, num_classes)``.
        """
        tokens = self.encoder(self.embed(images))  # (B, N + 1, d_model)
        return self.head(tokens[:, 0])  # type: ignore[no-any-return]

    def attention_weights(self) -> torch.Tensor:
        """Stack the self-attention weights of the last forward pass.

        Returns:
            ``(num_layers, B, H, N + 1, N + 1)``; token 0 is the class token.
        """
        return self.encoder.attention_weights()


class SmallCNN(nn.Module):
    """A small convolutional classifier: three 3 x 3 conv layers, two poolings, a linear head.

    Introduced in :ref:`sec-vit`.
    """

    def __init__(
        self,
        image_size: int | tuple[int, int] = 8,
        in_channels: int = 1,
        num_classes: int = 10,
        width: int = 32,
    ) -> None:
        """Create the layers.

        Args:
            image_size: ``H`` (square) or ``(H, W)``, multiples of 4 (two 2 x 2 poolings).
            in_channels: channels ``C`` of the images, > 0.
            num_classes: outputs, > 0.
            width: channels of the first conv layer (the others have ``2 * width``), > 0.
        """
        super().__init__()
        h, w = _size_pair("image_size", image_size)
        _check_divisible(h, w, 4)
        c = _validate.positive_int("in_channels", in_channels)
        k = _validate.positive_int("num_classes", num_classes)
        width = _validate.positive_int("width", width)
        self.image_size = (h, w)
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 2w, H/2, W/2)
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 2w, H/4, W/4)
        )
        self.head = nn.Linear(2 * width * (h // 4) * (w // 4), k)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Classify images.

        Args:
            images: ``(B, C, H, W)`` of the size given at construction.

        Returns:
            Logits ``(B, num_classes)``.
        """
        images = _check_images("images", images)
        if tuple(images.shape[2:]) != self.image_size:
            raise ValueError(
                f"images must be {self.image_size[0]} x {self.image_size[1]}, got shape "
                f"{tuple(images.shape)}"
            )
        return self.head(self.features(images).flatten(1))  # type: ignore[no-any-return]
