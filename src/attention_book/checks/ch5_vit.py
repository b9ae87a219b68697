"""Checkers for chapter 5's Vision Transformer: patches (5.1), attention distance (5.3)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ._harness import (
    _array,
    _call,
    _close,
    _expect,
    _randn,
    _require_callable,
    _run,
)

__all__ = ["check_mean_attention_distance", "check_patchify"]


def check_patchify(fn: Callable[..., Any]) -> bool:
    """Check ``fn(images, patch_size)``, which cuts images into flattened square patches.

    Patches must come in reading order (along the top row of patches first), each flattened
    channel first, then its rows, then its columns: the layout of ``torch.nn.functional.unfold``
    and of a ``Conv2d`` kernel.

    Args:
        fn: takes ``images`` ``(B, C, H, W)`` and an int ``patch_size`` ``p`` dividing ``H``
            and ``W``; returns ``(B, (H / p) * (W / p), C * p * p)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-images-as-sequences`.
    """
    _require_callable("fn", fn)

    def reference(images: torch.Tensor, p: int) -> np.ndarray:
        out: np.ndarray = nn.functional.unfold(images, p, stride=p).transpose(1, 2).numpy()
        return out

    def numbered(*shape: int) -> torch.Tensor:
        return torch.arange(math.prod(shape), dtype=torch.float64).reshape(shape)

    def matches(images: torch.Tensor, p: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"images": images.clone(), "patch_size": p}
            want = reference(images, p)
            out = _array(_call(fn, args, prop), "the output", prop, args)
            if out.shape != want.shape:
                _expect(False, prop, args, f"shape {want.shape}", f"shape {out.shape}")
            _expect(_close(out, want), prop, args, want, out)

        return check

    def shape() -> None:
        images = _randn(2, 1, 4, 4, seed=11)
        args = {"images": images, "patch_size": 2}
        prop = "output shape (B, N, C*p*p): 2 images of 4 x 4 in 2 x 2 patches -> (2, 4, 4)"
        out = _array(_call(fn, args, prop), "the output", prop, args)
        _expect(out.shape == (2, 4, 4), prop, args, "shape (2, 4, 4)", f"shape {out.shape}")

    def leaves_input_alone() -> None:
        images = _randn(1, 2, 4, 4, seed=12)
        given = images.clone()
        args = {"images": given, "patch_size": 2}
        prop = "the input is left unchanged (no in-place edits of images)"
        _call(fn, args, prop)
        _expect(torch.equal(given, images), prop, {"images": images}, images, given)

    return _run(
        "patchify",
        [
            shape,
            matches(
                numbered(1, 1, 4, 4),
                2,
                "pixels numbered 0..15: patch 0 is the top-left 2 x 2 block [0, 1, 4, 5], read "
                "row by row, and the patches go left to right, then down",
            ),
            matches(
                numbered(1, 1, 4, 6),
                2,
                "a 4 x 6 image: 3 patches per row, 2 rows of patches (rows before columns)",
            ),
            matches(
                numbered(1, 3, 2, 2),
                2,
                "3 channels: a patch is flattened channel first, (C, p, p), as in a Conv2d "
                "kernel, not channel last",
            ),
            matches(_randn(3, 2, 6, 4, seed=13), 2, "a batch of 3 images keeps them apart"),
            matches(_randn(2, 1, 4, 4, seed=14), 4, "patch_size = image size: one patch"),
            matches(_randn(2, 1, 3, 2, seed=15), 1, "patch_size = 1: every pixel a token"),
            leaves_input_alone,
        ],
    )


def _reference_attention_distance(weights: torch.Tensor, grid: tuple[int, int]) -> np.ndarray:
    gh, gw = grid
    rows, cols = np.divmod(np.arange(gh * gw), gw)
    centres = np.stack([rows, cols], axis=-1).astype(np.float64)
    distances = np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(-1))  # (N, N)
    out: np.ndarray = (weights.numpy() * distances).sum(-1).mean(-1)
    return out


def check_mean_attention_distance(fn: Callable[..., Any]) -> bool:
    """Check ``fn(weights, grid)``, the mean attention distance of patches, in patches.

    For query patch ``i`` the distance is ``sum_j a_ij * ||pos_i - pos_j||``, Euclidean,
    with patch ``i`` at row ``i // gw`` and column ``i % gw`` (reading order); the result
    averages it over the queries.

    Args:
        fn: takes ``weights`` ``(..., N, N)`` over ``N = gh * gw`` patches and
            ``grid = (gh, gw)``; returns ``(...)``.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-vit-attention`.
    """
    _require_callable("fn", fn)

    def run(args: dict[str, Any], prop: str) -> np.ndarray:
        return _array(_call(fn, args, prop), "the output", prop, args)

    def matches(weights: torch.Tensor, grid: tuple[int, int], prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"weights": weights.clone(), "grid": grid}
            want = _reference_attention_distance(weights, grid)
            out = run(args, prop)
            if out.shape != want.shape:
                _expect(False, prop, args, f"shape {want.shape}", f"shape {out.shape}")
            _expect(_close(out, want), prop, args, want, out)

        return check

    def right_neighbour(gh: int, gw: int) -> torch.Tensor:
        weights = torch.zeros(gh * gw, gh * gw, dtype=torch.float64)
        for i in range(gh * gw):
            r, c = divmod(i, gw)
            weights[i, r * gw + (c + 1 if c + 1 < gw else c - 1)] = 1.0
        return weights

    def looks_at(j: int, n: int) -> torch.Tensor:
        weights = torch.zeros(n, n, dtype=torch.float64)
        weights[:, j] = 1.0
        return weights

    def random_weights(*shape: int, seed: int) -> torch.Tensor:
        return torch.softmax(2 * _randn(*shape, seed=seed), dim=-1)

    return _run(
        "mean_attention_distance",
        [
            matches(torch.eye(4, dtype=torch.float64), (2, 2), "every patch on itself: 0"),
            matches(right_neighbour(2, 3), (2, 3), "every patch on its row neighbour: 1"),
            matches(
                torch.eye(4, dtype=torch.float64).flip(0),
                (2, 2),
                "diagonal neighbours are sqrt(2) apart (Euclidean, not |dr| + |dc|)",
            ),
            matches(
                looks_at(1, 6),
                (3, 2),
                "every patch on patch 1 of a 3 x 2 grid, at row 0, column 1: patch i sits at "
                "row i // gw, column i % gw",
            ),
            matches(
                random_weights(6, 6, seed=16),
                (2, 3),
                "weighted by the attention, averaged (not summed) over the queries",
            ),
            matches(
                random_weights(2, 3, 8, 8, seed=17),
                (2, 4),
                "leading dimensions (layers, heads) are kept: (2, 3, 8, 8) -> (2, 3)",
            ),
        ],
    )
