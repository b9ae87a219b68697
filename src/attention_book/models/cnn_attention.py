"""Attention inside a CNN: squeeze-and-excitation over channels, a spatial map over positions.

- :class:`SqueezeExcitation` (Hu et al., 2018) pools each channel over the whole image,
  passes the ``C`` averages through a small bottleneck MLP and rescales every channel by a
  sigmoid gate in ``(0, 1)``: *which* features matter for this image.
- :class:`SpatialAttention` (the spatial half of CBAM, Woo et al., 2018) pools over the
  channels at every position (mean and max), convolves the two maps into one and rescales
  every position by a sigmoid gate: *where* to look.
- :class:`AttentionCNN` is a small classifier with either, both or neither after its last block,
  for the ablation of :ref:`sec-channel-spatial`; :func:`conv_backbone` is the plain
  feature extractor the captioner and the detector share.

Images are ``(B, C, H, W)``, as everywhere in PyTorch's vision code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import _validate

__all__ = ["AttentionCNN", "SpatialAttention", "SqueezeExcitation", "conv_backbone"]


def _check_images(name: str, x: object, channels: int | None = None) -> torch.Tensor:
    x = _validate.tensor(name, x)
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = "C" if channels is None else str(channels)
        raise ValueError(f"{name} must be (B, {want}, H, W), got shape {tuple(x.shape)}")
    return x


class SqueezeExcitation(nn.Module):
    """Rescale each channel by a gate computed from the whole image (Hu et al., 2018).

    ``s = sigmoid(W_2 relu(W_1 mean_{h,w}(x)))`` and the output is ``x * s`` per channel.
    After a forward pass, ``last_weights`` holds the gates ``(B, C)`` (detached).

    Introduced in :ref:`sec-channel-spatial`.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        """Create the bottleneck MLP.

        Args:
            channels: number of channels ``C``, > 0.
            reduction: the hidden layer has ``max(1, C // reduction)`` units, > 0.
        """
        super().__init__()
        self.channels = _validate.positive_int("channels", channels)
        reduction = _validate.positive_int("reduction", reduction)
        hidden = max(1, channels // reduction)
        self.squeeze = nn.Linear(channels, hidden)
        self.excite = nn.Linear(hidden, channels)
        self.last_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Squeeze (average over positions), excite (MLP and sigmoid), rescale the channels.

        Args:
            x: ``(B, C, H, W)``.

        Returns:
            ``(B, C, H, W)``, each channel multiplied by its gate.
        """
        _check_images("x", x, self.channels)
        squeezed = x.mean(dim=(2, 3))  # (B, C)
        gates = torch.sigmoid(self.excite(torch.relu(self.squeeze(squeezed))))  # (B, C)
        self.last_weights = gates.detach()
        return x * gates[:, :, None, None]


class SpatialAttention(nn.Module):
    """Rescale each position by a gate computed from all its channels (CBAM's spatial half).

    The mean and the max over the channels give two ``(H, W)`` maps; one convolution turns
    them into a map of scores, and a sigmoid into gates in ``(0, 1)``. After a forward pass,
    ``last_map`` holds the gates ``(B, 1, H, W)`` (detached).

    Introduced in :ref:`sec-channel-spatial`.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        """Create the convolution from the two pooled maps to the score map.

        Args:
            kernel_size: an odd kernel side, > 0 (CBAM uses 7).
        """
        super().__init__()
        kernel_size = _validate.positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (to keep H and W), got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)
        self.last_map: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool over the channels, score every position, rescale the positions.

        Args:
            x: ``(B, C, H, W)``.

        Returns:
            ``(B, C, H, W)``, each position multiplied by its gate.
        """
        _check_images("x", x)
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        gates = torch.sigmoid(self.conv(pooled))  # (B, 1, H, W)
        self.last_map = gates.detach()
        return x * gates


def conv_backbone(in_channels: int, widths: Sequence[int], pool: Sequence[bool]) -> nn.Sequential:
    """Build a plain CNN: 3x3 convolution and ReLU per width, each optionally halving H, W.

    Args:
        in_channels: channels of the input image, > 0.
        widths: output channels of each convolution, all > 0.
        pool: one flag per width: follow that convolution by a 2x2 max-pool.

    Returns:
        An ``nn.Sequential`` mapping ``(B, in_channels, H, W)`` to
        ``(B, widths[-1], H / 2^k, W / 2^k)`` for ``k`` pools.

    Introduced in :ref:`sec-captioning`.
    """
    _validate.positive_int("in_channels", in_channels)
    widths = [_validate.positive_int("widths[i]", w) for w in widths]
    if not widths or len(pool) != len(widths):
        raise ValueError(
            f"widths and pool must be non-empty and of one length, got {len(widths)} widths "
            f"and {len(pool)} pool flags"
        )
    layers: list[nn.Module] = []
    for width, halve in zip(widths, pool, strict=True):
        layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU()]
        if halve:
            layers.append(nn.MaxPool2d(2))
        in_channels = width
    return nn.Sequential(*layers)


class AttentionCNN(nn.Module):
    """A small image classifier with optional channel and spatial attention after its last block.

    Each block is a 3x3 convolution and a ReLU, then a 2x2 max-pool, except the last block,
    which instead ends with squeeze-and-excitation (``channel``) and then spatial attention
    (``spatial``), in CBAM's order. Global average pooling and a linear layer give the logits.

    Introduced in :ref:`sec-channel-spatial`.
    """

    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = (16, 32, 32),
        *,
        channel: bool = False,
        spatial: bool = False,
        in_channels: int = 3,
        reduction: int = 4,
        kernel_size: int = 7,
    ) -> None:
        """Create the blocks and the classifier head.

        Args:
            num_classes: number of classes, > 0.
            widths: channels of each block, all > 0.
            channel: add squeeze-and-excitation to the last block.
            spatial: add spatial attention to the last block.
            in_channels: channels of the input images, > 0.
            reduction: squeeze-and-excitation's bottleneck factor, > 0.
            kernel_size: spatial attention's odd kernel side, > 0.
        """
        super().__init__()
        num_classes = _validate.positive_int("num_classes", num_classes)
        self.in_channels = _validate.positive_int("in_channels", in_channels)
        widths = [_validate.positive_int("widths[i]", w) for w in widths]
        if not widths:
            raise ValueError("widths must hold at least one width, got none")
        blocks = []
        for i, width in enumerate(widths):
            layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU()]
            last = i == len(widths) - 1
            if channel and last:
                layers.append(SqueezeExcitation(width, reduction))
            if spatial and last:
                layers.append(SpatialAttention(kernel_size))
            if not last:
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Classify a batch of images.

        Args:
            images: ``(B, in_channels, H, W)``.

        Returns:
            Logits ``(B, num_classes)``.
        """
        _check_images("images", images, self.in_channels)
        features = self.blocks(images)  # (B, C, h, w)
        return self.head(features.mean(dim=(2, 3)))  # type: ignore[no-any-return]

    def spatial_maps(self) -> list[torch.Tensor]:
        """Return the spatial attention gates of the last forward pass, one per block.

        Returns:
            One ``(B, 1, h, w)`` tensor per block, from the largest ``h, w`` to the smallest.
        """
        maps = [m.last_map for m in self.modules() if isinstance(m, SpatialAttention)]
        if not maps:
            raise RuntimeError("this model has no spatial attention (spatial=False)")
        if any(m is None for m in maps):
            raise RuntimeError("no spatial maps yet: run a forward pass first")
        return maps  # type: ignore[return-value]
