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

__all__ = ["__version__", "glue", "seed_everything"]

__version__ = "0.1.0"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch so that a page gives the same output on every run.

    Args:
        seed: a non-negative integer below 2**32.

    Returns:
        A ``torch.Generator`` seeded with ``seed``, for code that wants its own stream
        (data loaders, samplers) independent of the global one.

    Introduced in :ref:`sec-soft-lookup`.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - pages may still use the legacy global generator
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


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
