"""The Vision Transformer (Dosovitskiy et al., 2021), small enough to train on a CPU.

An image becomes a sequence: :func:`patchify` cuts it into non-overlapping ``p x p`` patches
in reading order, :class:`PatchEmbedding` projects each flattened patch to ``d_model``
(the same as a convolution with kernel and stride ``p``), a learned class token goes in
front, learned position embeddings are added, and the package's pre-LN
:class:`~attention_book.models.transformer.Encoder` does the rest. :class:`SmallCNN` is the
convolutional baseline, :func:`load_digits_split` the data (scikit-learn's 8 x 8 digits,
bundled, no download), and :func:`mean_attention_distance` measures how far each head looks.

Images are ``(B, C, H, W)``, as everywhere in PyTorch's vision code.

Each idea has its own module: ``patches`` (:func:`patchify`, :func:`unpatchify`,
:class:`PatchEmbedding`), ``model`` (:class:`ViT`, :class:`SmallCNN`), ``digits`` (the data
and the training recipes) and ``maps`` (:func:`mean_attention_distance`). Import everything
from here: ``from attention_book.models import vit``.
"""

from __future__ import annotations

from ..._facade import adopt
from . import digits as _digits
from .digits import (
    DigitsSplit,
    accuracy,
    load_digits_split,
    train_classifier,
    train_digits_vit,
)
from .maps import mean_attention_distance
from .model import SmallCNN, ViT
from .patches import PatchEmbedding, patchify, unpatchify

#: The chapter's digits ViT, its architecture (the arguments of :class:`ViT`) ...
DIGITS_VIT = _digits.DIGITS_VIT
#: ... and its training recipe (the keyword arguments of :func:`train_classifier`).
DIGITS_TRAINING = _digits.DIGITS_TRAINING

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

adopt(globals(), __all__)  # document and pickle them under this package
