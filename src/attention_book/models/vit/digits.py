"""Digits from scikit-learn, split, and the training of the chapter's classifiers on them."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from ... import make_generator, seed_everything
from ...train import History, train
from .model import ViT
from .patches import _check_images

__all__ = [
    "DIGITS_TRAINING",
    "DIGITS_VIT",
    "DigitsSplit",
    "accuracy",
    "load_digits_split",
    "train_classifier",
    "train_digits_vit",
]


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

    Introduced in :ref:`sec-images-as-sequences`, explained in :ref:`sec-vit`.
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

    Introduced in :ref:`sec-images-as-sequences`, explained in :ref:`sec-vit`.
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
