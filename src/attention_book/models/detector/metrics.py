"""Scoring a detector: average precision per class and its mean (PASCAL VOC)."""

from __future__ import annotations

import numpy as np
import torch

from ... import _validate
from .boxes import _targets, box_cxcywh_to_xyxy, box_iou

__all__ = ["average_precision", "detection_ap"]


def average_precision(scores: torch.Tensor, correct: torch.Tensor, num_true: int) -> float:
    """Compute the area under the precision-recall curve of ranked detections (PASCAL VOC).

    Detections are sorted by score; precision is made monotone (each point takes the best
    precision at any higher recall) and integrated over recall, as in VOC 2010 and later.

    Args:
        scores: ``(N,)`` confidence of each detection.
        correct: ``(N,)`` boolean, True for a detection matched to a true object.
        num_true: the number of true objects, > 0.

    Returns:
        AP in ``[0, 1]``.

    Introduced in :ref:`sec-detection`.
    """
    num_true = _validate.positive_int("num_true", num_true)
    if scores.shape != correct.shape or scores.ndim != 1:
        raise ValueError(
            f"scores and correct must both be (N,), got {tuple(scores.shape)}, "
            f"{tuple(correct.shape)}"
        )
    order = torch.argsort(scores, descending=True, stable=True)
    hits = correct[order].double()
    tp, fp = hits.cumsum(0), (1 - hits).cumsum(0)
    recall = np.concatenate([[0.0], (tp / num_true).numpy(), [1.0]])
    precision = np.concatenate([[1.0], (tp / (tp + fp)).numpy(), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    return float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))


@torch.no_grad()
def detection_ap(
    outputs: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor, iou_threshold: float = 0.5
) -> tuple[float, list[float]]:
    """Score a detector by its mean AP over the classes at one IoU threshold.

    Every query is a detection of its most likely real class, with that class's
    probability as score. Within an image and a class, detections are taken from the most
    confident down; each is correct if it overlaps a not yet claimed true box of its class
    by ``IoU >= iou_threshold`` (which it then claims), so a duplicate counts as a miss.

    Args:
        outputs: ``(logits (B, Q, K + 1), boxes (B, Q, 4))`` from :class:`DETR`.
        targets: ``(B, M, 5)`` rows ``(label, x0, y0, x1, y1)``; label -1 pads.
        iou_threshold: the overlap a detection needs, in ``(0, 1]``.

    Returns:
        ``(mAP, per-class AP)``; a class with no true object in ``targets`` is left out
        of the mean (its AP is reported as NaN).

    Introduced in :ref:`sec-detection`.
    """
    logits, boxes = outputs
    targets = _targets(targets)
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    probs = logits.softmax(dim=-1)[..., :-1]  # (B, Q, K)
    scores, classes = probs.max(dim=-1)  # (B, Q)
    boxes = box_cxcywh_to_xyxy(boxes)
    per_class = []
    for k in range(logits.shape[-1] - 1):
        all_scores, all_correct, num_true = [], [], 0
        for i in range(len(logits)):
            true = targets[i, targets[i, :, 0] == k, 1:]  # (m, 4)
            num_true += len(true)
            mine = (classes[i] == k).nonzero().flatten()
            mine = mine[torch.argsort(scores[i, mine], descending=True, stable=True)]
            claimed = torch.zeros(len(true), dtype=torch.bool)
            ious = box_iou(boxes[i, mine], true) if len(true) else None
            for j in range(len(mine)):
                hit = False
                if ious is not None:
                    free = ious[j].masked_fill(claimed, -1.0)
                    best = int(free.argmax())
                    if free[best] >= iou_threshold:
                        claimed[best], hit = True, True
                all_correct.append(hit)
            all_scores.append(scores[i, mine])
        if num_true == 0:
            per_class.append(float("nan"))
            continue
        per_class.append(
            average_precision(
                torch.cat(all_scores).cpu(), torch.tensor(all_correct, dtype=torch.bool), num_true
            )
        )
    valid = [ap for ap in per_class if ap == ap]
    if not valid:
        raise ValueError("targets hold no true object: AP is undefined")
    return float(np.mean(valid)), per_class
