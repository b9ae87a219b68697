"""Boxes: corners from centres, IoU and generalized IoU, and the checks on box tensors.

Boxes are ``(x0, y0, x1, y1)`` in units of the image side (``[0, 1]``), except where a
function says ``cxcywh`` (centre and size, what the model predicts).
"""

from __future__ import annotations

import torch

from ... import _validate

__all__ = ["box_cxcywh_to_xyxy", "box_iou", "generalized_box_iou"]


def _check_boxes(name: str, boxes: object) -> torch.Tensor:
    boxes = _validate.tensor(name, boxes)
    if boxes.shape[-1] != 4:
        raise ValueError(f"{name} must be (..., 4) boxes, got shape {tuple(boxes.shape)}")
    return boxes


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Convert boxes from centre and size to corners.

    Args:
        boxes: ``(..., 4)`` as ``(cx, cy, w, h)``.

    Returns:
        ``(..., 4)`` as ``(x0, y0, x1, y1)``.

    Introduced in :ref:`sec-detection`.
    """
    cx, cy, w, h = _check_boxes("boxes", boxes).unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Compute the intersection over union of every box in ``a`` with every box in ``b``.

    Args:
        a: ``(N, 4)`` boxes ``(x0, y0, x1, y1)`` with ``x0 <= x1``, ``y0 <= y1``.
        b: ``(M, 4)`` boxes, likewise.

    Returns:
        ``(N, M)`` IoU in ``[0, 1]``; 0 for boxes that do not overlap (or have no area).

    Introduced in :ref:`sec-detection`.
    """
    a, b = _check_boxes("a", a), _check_boxes("b", b)
    _check_pair(a, b)
    iou, _ = _iou_and_union(a, b)
    return iou


def _area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]).clamp_min(0) * (boxes[..., 3] - boxes[..., 1]).clamp_min(
        0
    )


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(
            f"a and b must be (N, 4) and (M, 4), got {tuple(a.shape)}, {tuple(b.shape)}"
        )


def _iou_and_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and union of ``(..., N, 4)`` with ``(..., M, 4)``: two ``(..., N, M)`` tensors."""
    top_left = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])  # (..., N, M, 2)
    bottom_right = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    overlap = (bottom_right - top_left).clamp_min(0)  # no overlap: 0, not a negative area
    inter = overlap[..., 0] * overlap[..., 1]  # (..., N, M)
    union = _area(a)[..., :, None] + _area(b)[..., None, :] - inter
    return inter / union.clamp_min(1e-9), union


def _giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU of ``(..., N, 4)`` with ``(..., M, 4)``: ``(..., N, M)``, without checks."""
    iou, union = _iou_and_union(a, b)
    enclosing = torch.maximum(a[..., :, None, 2:], b[..., None, :, 2:]) - torch.minimum(
        a[..., :, None, :2], b[..., None, :, :2]
    )  # (..., N, M, 2)
    hull = enclosing[..., 0] * enclosing[..., 1]
    return iou - (hull - union) / hull.clamp_min(1e-9)


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Compute the generalized IoU (Rezatofighi et al., 2019) of every pair of boxes.

    ``GIoU = IoU - (|C| - |A u B|) / |C|`` with ``C`` the smallest box enclosing both: it
    equals the IoU for boxes that fill their enclosing box and goes down to -1 for distant
    ones, so it still says "move closer" when two boxes do not overlap.

    Args:
        a: ``(N, 4)`` boxes ``(x0, y0, x1, y1)``.
        b: ``(M, 4)`` boxes.

    Returns:
        ``(N, M)`` in ``[-1, 1]``.

    Introduced in :ref:`sec-detection`.
    """
    a, b = _check_boxes("a", a), _check_boxes("b", b)
    _check_pair(a, b)
    return _giou(a, b)


def _targets(targets: torch.Tensor) -> torch.Tensor:
    targets = _validate.tensor("targets", targets)
    if targets.ndim != 3 or targets.shape[-1] != 5:
        raise ValueError(
            f"targets must be (B, M, 5) rows (label, x0, y0, x1, y1), label -1 for padding; "
            f"got shape {tuple(targets.shape)}"
        )
    return targets
