"""Helper package of *Paying Attention*, an executable textbook on the attention mechanism.

Each chapter of the book builds an idea step by step and then imports the finished piece
from here. Modules: :mod:`attention_book.attention` (scores, softmax, attention),
:mod:`attention_book.train` (one small training loop), :mod:`attention_book.plots` (the book's
figure style) and :mod:`attention_book.checks` (self-checking exercises).
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

__all__ = ["__version__", "effective_seed", "glue", "make_generator", "seed_everything"]

__version__ = "0.1.0"


_SEED_ENV = "ATTENTION_BOOK_SEED"
_SEED_STRIDE = 1_000_003  # a prime: shifted seeds of one page never collide for k < 4,000


def effective_seed(seed: int) -> int:
    """Return the seed a page really uses for ``seed``: itself, or shifted by the environment.

    With the environment variable ``ATTENTION_BOOK_SEED`` set to ``k``, every seed a page
    asks for becomes ``(seed + k * 1_000_003) % 2**32``. ``k = 0`` (or the variable unset) is the
    book's own run; any other ``k`` replaces the seeds of every page while keeping a page's
    seeds distinct from each other, so a claim can be re-checked under other draws
    (``make robust``).

    Args:
        seed: a non-negative integer below 2**32.

    Returns:
        The seed to use, a non-negative integer below 2**32.

    Introduced in :ref:`sec-soft-lookup`.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    shift = os.environ.get(_SEED_ENV, "").strip()
    if not shift:
        return seed
    if not shift.isdigit():
        raise ValueError(f"{_SEED_ENV} must be a non-negative integer, got {shift!r}")
    return (seed + int(shift) * _SEED_STRIDE) % 2**32


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch so that a page gives the same output on every run.

    The seed used is :func:`effective_seed` of ``seed``: the environment variable
    ``ATTENTION_BOOK_SEED`` replaces every page's seeds to prove its claims robust.

    Args:
        seed: a non-negative integer below 2**32.

    Returns:
        A ``torch.Generator`` seeded with the same seed, for code that wants its own stream
        (data loaders, samplers) independent of the global one.

    Introduced in :ref:`sec-soft-lookup`.
    """
    seed = effective_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - pages may still use the legacy global generator
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def make_generator(seed: int) -> torch.Generator:
    """Return a fresh ``torch.Generator`` for ``seed``, without touching the global streams.

    Pages use this instead of ``torch.Generator().manual_seed(seed)`` so that
    ``ATTENTION_BOOK_SEED`` reaches every stream they draw from.

    Args:
        seed: a non-negative integer below 2**32.

    Returns:
        A ``torch.Generator`` seeded with :func:`effective_seed` of ``seed``.

    Introduced in :ref:`sec-seq2seq`.
    """
    return torch.Generator().manual_seed(effective_seed(seed))


def glue(name: str, value: Any, display: bool = True) -> None:
    """Record ``value`` under ``name`` so that the book's prose can quote it.

    In the book's build this is ``myst_nb.glue``: the text ``{glue:text}`name```
    in a page shows the number this cell computed. Where MyST-NB is not installed (Colab),
    the value is simply shown when ``display`` is true.

    Args:
        name: the key the prose refers to; unique within a page.
        value: any object with a text representation, usually a number.
        display: also show the value under the cell.

    Introduced in :ref:`sec-soft-lookup`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return
    myst_glue(name, value, display=display)
