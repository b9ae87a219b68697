"""The Vision Transformer (Dosovitskiy et al., 2021), small enough to train on a CPU.

An image becomes a sequence: :func:`patchify` cuts it into non-overlapping ``p x p`` patches
in reading order, :class:`PatchEmbedding` projects each flattened patch to ``d_model``
(the same as a convolution with kernel and stride ``p``), a learned class token goes in
front, learned position embeddings are added, and the package's pre-LN
:class:`~attention_book.models.transformer.Encoder` does the rest. :class:`SmallCNN` is the
convolutional baseline, :func:`load_digits_split` the data (scikit-learn's 8 x 8 digits,
bundled, no download), and :func:`mean_attention_distance` measures how far each head looks.

Images are ``(B, C, H, W)``, as everywhere in PyTorch's vision code.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .. import _validate, make_generator, seed_everything
from ..train import History, train
from .transformer import Encoder

__all__ = [
    "DIGITS_TRAINING",
    "DIGITS_VIT",
    "DigitsSplit",
    "PatchEmbedding",
    "SmallCNN",
    "ViT",
    "accuracy",
    "load_digits_split",
    "mean_attention_distance",
    "patchify",
    "train_classifier",
    "train_digits_vit",
    "unpatchify",
]

#: Position embeddings of a :class:`ViT`: a learned table per token ("1d"), learned row and
#: column tables summed ("2d"), or none.
PositionKind = Literal["1d", "2d", "none"]


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


class DigitsSplit(NamedTuple):
    """A seeded train/test split of scikit-learn's digits, as tensors.

    Introduced in :ref:`sec-images-as-sequences`.
    """

    #: ``(n_train, 1, 8, 8)`` float32 images in ``[0, 1]``.
    x_train: torch.Tensor
    #: ``(n_train,)`` int64 labels 0-9.
    y_train: torch.Tensor
    #: ``(n_test, 1, 8, 8)``.
    x_test: torch.Tensor
    #: ``(n_test,)``.
    y_test: torch.Tensor


def load_digits_split(test_fraction: float = 0.25, seed: int = 0) -> DigitsSplit:
    """Load the 1,797 bundled 8 x 8 digits and split them, stratified by class.

    The data are the UCI optical digits (Alpaydin & Kaynak, 1998) that ship inside
    scikit-learn: nothing is downloaded. Pixel values 0-16 are scaled to ``[0, 1]``.

    Args:
        test_fraction: share of the images held out for testing, in ``(0, 1)``.
        seed: seeds the shuffle; the same seed gives the same split.

    Returns:
        A :class:`DigitsSplit` ``(x_train, y_train, x_test, y_test)``.

    Introduced in :ref:`sec-images-as-sequences`.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise TypeError(f"test_fraction must be a number, got {type(test_fraction).__name__}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (1797, 1, 8, 8)
    y = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(
        torch.arange(len(y)).numpy(),
        test_size=test_fraction,
        random_state=seed,
        stratify=y.numpy(),
    )
    train_i, test_i = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    return DigitsSplit(x[train_i], y[train_i], x[test_i], y[test_i])


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Return the share of images whose largest logit is the true label.

    Args:
        model: maps ``(B, C, H, W)`` to logits ``(B, K)``; it is put in eval mode.
        images: ``(B, C, H, W)``.
        labels: ``(B,)`` integer labels.

    Returns:
        The accuracy, a float in ``[0, 1]``.

    Introduced in :ref:`sec-images-as-sequences`.
    """
    images = _check_images("images", images)
    if not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1]:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be ({len(images)},) for images {tuple(images.shape)}, "
                         f"got {got}")  # fmt: skip
    model.eval()
    device = next(model.parameters()).device
    predicted = model(images.to(device)).argmax(-1)
    return float((predicted == labels.to(device)).float().mean())


def train_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    label_smoothing: float = 0.0,
    decay: bool = False,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Train an image classifier with cross-entropy, using :func:`attention_book.train.train`.

    Args:
        model: maps ``(B, C, H, W)`` to logits ``(B, K)``.
        images: ``(n, C, H, W)`` training images.
        labels: ``(n,)`` integer labels.
        epochs: passes over the data, > 0.
        lr: Adam's learning rate, > 0.
        batch_size: images per step, > 0.
        label_smoothing: share of each target spread evenly over all classes, in ``[0, 1)``.
        decay: lower the learning rate linearly to zero over the run.
        seed: seeds the order of the batches.
        progress: show the progress bar.
        desc: label of the progress bar.

    Returns:
        The training :class:`~attention_book.train.History`.

    Introduced in :ref:`sec-vit`.
    """
    if (
        isinstance(label_smoothing, bool)
        or not isinstance(label_smoothing, (int, float))
        or not 0 <= label_smoothing < 1
    ):
        raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing!r}")
    smoothing = float(label_smoothing)

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, label_smoothing=smoothing)

    return train(
        model,
        (images, labels),
        loss_fn,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        decay=decay,
        generator=make_generator(seed),
        progress=progress,
        desc=desc,
    )


#: The chapter's digits ViT, its architecture (the arguments of :class:`ViT`) ...
DIGITS_VIT: dict[str, int] = {
    "image_size": 8,
    "patch_size": 4,
    "num_classes": 10,
    "d_model": 48,
    "num_heads": 4,
    "num_layers": 4,
    "d_ff": 96,
}
#: ... and its training recipe (the keyword arguments of :func:`train_classifier`).
DIGITS_TRAINING: dict[str, float | bool] = {
    "epochs": 30,
    "lr": 2e-3,
    "batch_size": 64,
    "label_smoothing": 0.1,
    "decay": True,
}


def train_digits_vit(
    seed: int = 0,
    split: DigitsSplit | None = None,
    *,
    patch_size: int | None = None,
    progress: bool = True,
) -> tuple[ViT, History]:
    """Build the chapter's digits ViT (``DIGITS_VIT``) and train it (``DIGITS_TRAINING``).

    Args:
        seed: seeds the initial weights and the batch order.
        split: the data; ``None`` loads :func:`load_digits_split` with its defaults.
        patch_size: overrides ``DIGITS_VIT["patch_size"]`` when given.
        progress: show the progress bars.

    Returns:
        ``(model, history)``, the model trained and in eval mode.

    Introduced in :ref:`sec-vit`.
    """
    split = load_digits_split() if split is None else split
    arch = dict(DIGITS_VIT)
    if patch_size is not None:
        arch["patch_size"] = patch_size
    seed_everything(seed)
    model = ViT(**arch)  # type: ignore[arg-type]
    recipe = DIGITS_TRAINING
    history = train_classifier(
        model,
        split.x_train,
        split.y_train,
        epochs=int(recipe["epochs"]),
        lr=float(recipe["lr"]),
        batch_size=int(recipe["batch_size"]),
        label_smoothing=float(recipe["label_smoothing"]),
        decay=bool(recipe["decay"]),
        seed=seed,
        progress=progress,
        desc=f"ViT {arch['patch_size']}x{arch['patch_size']}, seed {seed}",
    )
    return model, history


def mean_attention_distance(
    weights: torch.Tensor, grid: tuple[int, int], patch_size: int = 1
) -> torch.Tensor:
    """Return how far, on average, each query patch looks: the weighted distance to its keys.

    For a query patch ``i``, the distance is ``sum_j a_ij * ||pos_i - pos_j||``, with the
    positions of the patch centres on the image; the result averages it over the queries.
    When ``N = gh * gw + 1``, token 0 is taken as a class token: its row and column are
    dropped and each patch's weights on the other patches renormalised to sum to one.

    Args:
        weights: ``(..., N, N)`` attention weights over ``N = gh * gw`` patches in reading
            order (or ``gh * gw + 1`` tokens with a class token first).
        grid: ``(gh, gw)``, the patches per column and per row.
        patch_size: side of a patch in pixels, > 0; the result is in pixels (in patches for 1).

    Returns:
        ``(...)``: the mean distance for each leading index (e.g. each layer, image and head).

    Introduced in :ref:`sec-vit-attention`.
    """
    weights = _validate.tensor("weights", weights, min_ndim=2)
    gh, gw = _size_pair("grid", grid)
    p = _validate.positive_int("patch_size", patch_size)
    n = gh * gw
    if weights.shape[-1] != weights.shape[-2] or weights.shape[-1] not in (n, n + 1):
        raise ValueError(
            f"weights must be (..., {n}, {n}) for a {gh} x {gw} grid (or (..., {n + 1}, "
            f"{n + 1}) with a class token), got shape {tuple(weights.shape)}"
        )
    if weights.shape[-1] == n + 1:
        weights = weights[..., 1:, 1:]
        weights = weights / weights.sum(-1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
    rows = torch.arange(gh, device=weights.device, dtype=weights.dtype).repeat_interleave(gw)
    cols = torch.arange(gw, device=weights.device, dtype=weights.dtype).repeat(gh)
    centres = torch.stack([rows, cols], dim=-1) * p  # (N, 2), pixels
    distances = torch.cdist(centres, centres)  # (N, N)
    return (weights * distances).sum(-1).mean(-1)
