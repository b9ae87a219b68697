"""Checkers for chapter 5 with CNNs: squeeze-excitation (5.4), the penalty (5.5), IoU (5.6)."""

from __future__ import annotations

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

__all__ = ["check_box_iou", "check_doubly_stochastic_penalty", "check_squeeze_excitation"]


def check_squeeze_excitation(cls: type[nn.Module]) -> bool:
    """Check a squeeze-and-excitation module class ``cls(channels, reduction)``.

    The module must have two ``nn.Linear`` layers, ``squeeze`` (``C`` to ``C // reduction``)
    and ``excite`` (back to ``C``), and ``forward(x)`` must return ``x`` ``(B, C, H, W)``
    with each channel multiplied by ``sigmoid(excite(relu(squeeze(mean of x over H, W))))``.

    Args:
        cls: the class (not an instance).

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-channel-spatial`.
    """
    if not isinstance(cls, type):
        raise TypeError(f"cls must be a class, got {type(cls).__name__}")
    channels, reduction = 8, 4
    state: dict[str, nn.Module] = {}

    def build() -> None:
        args = {"channels": channels, "reduction": reduction}
        prop = "cls(channels=8, reduction=4) has squeeze = Linear(8, 2) and excite = Linear(2, 8)"
        module = _call(cls, args, prop)
        squeeze, excite = getattr(module, "squeeze", None), getattr(module, "excite", None)
        ok = (
            isinstance(module, nn.Module)
            and isinstance(squeeze, nn.Linear)
            and isinstance(excite, nn.Linear)
            and (squeeze.in_features, squeeze.out_features) == (channels, channels // reduction)
            and (excite.in_features, excite.out_features) == (channels // reduction, channels)
        )
        got = [
            f"{type(layer).__name__}"
            + (
                f"({layer.in_features}, {layer.out_features})"
                if isinstance(layer, nn.Linear)
                else ""
            )
            for layer in (squeeze, excite)
        ]
        _expect(ok, prop, args, "squeeze Linear(8, 2), excite Linear(2, 8)", got)
        torch.manual_seed(0)
        module = module.double()
        with torch.no_grad():
            for p in module.parameters():
                p.normal_()
        state["module"] = module

    def reference(x: torch.Tensor) -> np.ndarray:
        sq: nn.Module = getattr(state["module"], "squeeze")  # noqa: B009
        ex: nn.Module = getattr(state["module"], "excite")  # noqa: B009
        with torch.no_grad():
            gates = torch.sigmoid(ex(torch.relu(sq(x.mean(dim=(2, 3))))))
        result: np.ndarray = (x * gates[:, :, None, None]).numpy()
        return result

    def matches(x: torch.Tensor, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"x": x}
            with torch.no_grad():
                out = _array(_call(state["module"], args, prop), "the output", prop, args)
            want = reference(x)
            _expect(_close(out, want), prop, args, want, out)

        return check

    x = _randn(2, channels, 5, 4, seed=11)
    peaked = torch.zeros(1, channels, 4, 4, dtype=torch.float64)
    peaked[..., 0, 0] = 16.0  # mean 1, max 16: tells a mean from a max
    return _run(
        "SqueezeExcitation",
        [
            build,
            matches(x, "output = x * sigmoid(excite(relu(squeeze(channel means)))), per channel"),
            matches(
                peaked,
                "the squeeze is the mean over all positions (not the max, not one position)",
            ),
            matches(_randn(3, channels, 1, 7, seed=12), "works for any H, W and batch size"),
        ],
    )


def _reference_penalty(weights: torch.Tensor, mask: torch.Tensor) -> float:
    total = (weights * mask[..., None]).sum(dim=1)  # (B, S)
    return float(((1 - total) ** 2).sum(dim=1).mean())


def check_doubly_stochastic_penalty(fn: Callable[..., Any]) -> bool:
    """Check ``fn(weights, mask)``, Show, Attend and Tell's attention penalty.

    ``penalty = mean over images of sum over cells of (1 - sum over steps of weights)^2``,
    with only the real steps (``mask`` True) counted.

    Args:
        fn: takes ``weights`` ``(B, T, S)`` (each step's attention over ``S`` cells) and a
            boolean ``mask`` ``(B, T)``; returns a scalar tensor.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-captioning`.
    """
    _require_callable("fn", fn)

    def matches(weights: torch.Tensor, mask: torch.Tensor, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"weights": weights, "mask": mask}
            out = _array(_call(fn, args, prop), "the penalty", prop, args)
            want = _reference_penalty(weights, mask)
            _expect(out.shape == () and _close(out, np.array(want)), prop, args, want, out)

        return check

    every_cell_once = torch.eye(4, dtype=torch.float64)[None]  # (1, 4, 4)
    one_cell = torch.zeros(1, 4, 4, dtype=torch.float64)
    one_cell[..., 0] = 1.0
    rng = torch.Generator().manual_seed(13)
    random = torch.softmax(torch.randn(3, 5, 6, generator=rng, dtype=torch.float64), dim=-1)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    mask[2, 1:] = False
    return _run(
        "doubly_stochastic_penalty",
        [
            matches(
                every_cell_once,
                torch.ones(1, 4, dtype=torch.bool),
                "every cell attended once over the steps: penalty 0",
            ),
            matches(
                one_cell,
                torch.ones(1, 4, dtype=torch.bool),
                "all steps on one cell: sum over the steps, then (1 - 4)^2 + 3 * (1 - 0)^2 = 12",
            ),
            matches(
                random,
                torch.ones(3, 5, dtype=torch.bool),
                "the mean over the images of the sum over the cells",
            ),
            matches(random, mask, "padded steps (mask False) do not count"),
        ],
    )


def _reference_box_iou(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp_min(0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    result: np.ndarray = (inter / (area_a[:, None] + area_b[None, :] - inter)).numpy()
    return result


def check_box_iou(fn: Callable[..., Any]) -> bool:
    """Check ``fn(a, b)``, the IoU of every box in ``a`` with every box in ``b``.

    Args:
        fn: takes boxes ``a`` ``(N, 4)`` and ``b`` ``(M, 4)`` as corners
            ``(x0, y0, x1, y1)``; returns the ``(N, M)`` intersection over union.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-detection`.
    """
    _require_callable("fn", fn)

    def run(a: list[list[float]], b: list[list[float]], prop: str) -> None:
        args = {
            "a": torch.tensor(a, dtype=torch.float64),
            "b": torch.tensor(b, dtype=torch.float64),
        }
        out = _array(_call(fn, args, prop), "the IoU", prop, args)
        want = _reference_box_iou(args["a"], args["b"])
        _expect(_close(out, want), prop, args, want, out)

    def shape() -> None:
        a = [[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 4.0]]
        b = [[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0], [1.0, 0.0, 2.0, 3.0]]
        run(a, b, "shape (N, M) = (2, 3): every box of a against every box of b")

    return _run(
        "box_iou",
        [
            lambda: run([[1.0, 2.0, 4.0, 6.0]], [[1.0, 2.0, 4.0, 6.0]], "a box with itself: IoU 1"),
            lambda: run(
                [[0.0, 0.0, 4.0, 2.0]],
                [[2.0, 0.0, 6.0, 2.0]],
                "half-overlapping boxes: IoU = 4 / 12 (corners (x0, y0, x1, y1), not x, y, w, h)",
            ),
            lambda: run(
                [[0.0, 0.0, 1.0, 1.0]],
                [[3.0, 3.0, 4.0, 4.0]],
                "boxes apart on both axes: IoU 0 (clamp a negative overlap to 0 before "
                "multiplying: two negatives make a positive)",
            ),
            lambda: run(
                [[0.0, 0.0, 2.0, 2.0]],
                [[2.0, 0.0, 4.0, 2.0]],
                "boxes that only touch: IoU 0",
            ),
            lambda: run(
                [[0.0, 0.0, 4.0, 4.0]],
                [[1.0, 1.0, 2.0, 2.0]],
                "a box inside another: IoU = small area / large area = 1 / 16",
            ),
            shape,
        ],
    )
