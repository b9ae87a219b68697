"""Images as sequences: cut into patches, put back together, and embedded."""

from __future__ import annotations

import torch
from torch import nn

from ... import _validate

__all__ = ["PatchEmbedding", "patchify", "unpatchify"]


def _check_images(name: str, images: object) -> torch.Tensor:
    images = _validate.tensor(name, images)
    if images.ndim != 4:
        raise ValueError(f"{name} must be (B, C, H, W), got shape {tuple(images.shape)}")
    return images


def _check_divisible(height: int, width: int, patch_size: int) -> None:
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image size {height} x {width} is not divisible by patch_size={patch_size}: "
            f"both sides must be multiples of it"
        )


def _size_pair(name: str, size: object) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        raise ValueError(f"{name} must be a positive int or a pair (H, W) of them, got {size!r}")
    return int(size[0]), int(size[1])


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into non-overlapping square patches and flatten each one.

    Patches come in reading order (left to right along the top row of patches, then the
    next row); each is flattened channel first, then its rows, then its columns, the order
    of a ``Conv2d`` kernel ``(C, p, p)``.

    Args:
        images: ``(B, C, H, W)``, with ``H`` and ``W`` multiples of ``patch_size``.
        patch_size: side ``p`` of a patch in pixels, > 0.

    Returns:
        ``(B, (H / p) * (W / p), C * p * p)``.

    Introduced in :ref:`sec-images-as-sequences`.
    """
    images = _check_images("images", images)
    p = _validate.positive_int("patch_size", patch_size)
    b, c, h, w = images.shape
    _check_divisible(h, w, p)
    x = images.reshape(b, c, h // p, p, w // p, p)  # (B, C, gh, p, gw, p)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, p, p)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(
    patches: torch.Tensor, image_size: int | tuple[int, int], patch_size: int, channels: int
) -> torch.Tensor:
    """Put flattened patches back together into images: the inverse of :func:`patchify`.

    Args:
        patches: ``(B, N, C * p * p)`` in the order :func:`patchify` makes.
        image_size: ``H`` (square images) or ``(H, W)``, multiples of ``patch_size``.
        patch_size: side ``p`` of a patch, > 0.
        channels: ``C``, > 0.

    Returns:
        ``(B, C, H, W)``.

    Introduced in :ref:`sec-images-as-sequences`.
    """
    patches = _validate.tensor("patches", patches, floating=False)
    h, w = _size_pair("image_size", image_size)
    p = _validate.positive_int("patch_size", patch_size)
    c = _validate.positive_int("channels", channels)
    _check_divisible(h, w, p)
    gh, gw = h // p, w // p
    if patches.ndim != 3 or patches.shape[1:] != (gh * gw, c * p * p):
        raise ValueError(
            f"patches must be (B, {gh * gw}, {c * p * p}) for {c}-channel {h} x {w} images "
            f"in {p} x {p} patches, got shape {tuple(patches.shape)}"
        )
    x = patches.reshape(-1, gh, gw, c, p, p).permute(0, 3, 1, 4, 2, 5)  # (B, C, gh, p, gw, p)
    return x.reshape(-1, c, h, w)


class PatchEmbedding(nn.Module):
    """Project each flattened ``p x p`` patch to a ``d_model`` vector with one linear layer.

    The same map as ``nn.Conv2d(C, d_model, kernel_size=p, stride=p)``: :meth:`as_conv`
    builds that convolution with these weights.

    Introduced in :ref:`sec-images-as-sequences`.
    """

    def __init__(self, in_channels: int, patch_size: int, d_model: int) -> None:
        """Create the projection.

        Args:
            in_channels: channels ``C`` of the images, > 0.
            patch_size: side ``p`` of a patch, > 0.
            d_model: size of each patch's vector, > 0.
        """
        super().__init__()
        self.in_channels = _validate.positive_int("in_channels", in_channels)
        self.patch_size = _validate.positive_int("patch_size", patch_size)
        self.d_model = _validate.positive_int("d_model", d_model)
        self.proj = nn.Linear(in_channels * patch_size**2, d_model)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed every patch of every image.

        Args:
            images: ``(B, C, H, W)``.

        Returns:
            ``(B, N, d_model)`` with ``N = (H / p) * (W / p)`` patches in reading order.
        """
        images = _check_images("images", images)
        if images.shape[1] != self.in_channels:
            raise ValueError(
                f"images must have {self.in_channels} channel(s), got shape {tuple(images.shape)}"
            )
        return self.proj(patchify(images, self.patch_size))  # type: ignore[no-any-return]

    def as_conv(self) -> nn.Conv2d:
        """Return the convolution with kernel and stride ``p`` that computes the same map.

        Returns:
            An ``nn.Conv2d(C, d_model, p, stride=p)`` whose output ``(B, d_model, H/p, W/p)``,
            flattened and transposed, equals :meth:`forward`'s.
        """
        p = self.patch_size
        conv = nn.Conv2d(self.in_channels, self.d_model, p, stride=p)
        conv = conv.to(self.proj.weight.device, self.proj.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.proj.weight.reshape(self.d_model, self.in_channels, p, p))
            assert conv.bias is not None
            conv.bias.copy_(self.proj.bias)
        return conv
