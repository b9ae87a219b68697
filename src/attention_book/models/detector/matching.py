"""DETR's set loss: price every pairing, match one-to-one (Hungarian), then fit the matches."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch.nn import functional as F

from ... import _validate
from .boxes import _giou, _targets, box_cxcywh_to_xyxy

__all__ = ["hungarian_match", "match_cost", "set_loss"]


def match_cost(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    target_boxes: torch.Tensor,
    weights: tuple[float, float, float] = (1.0, 5.0, 2.0),
) -> torch.Tensor:
    """Price every pairing of a prediction with a true object, for one image or a batch.

    ``cost = -w_class p(label) + w_l1 |box - target|_1 - w_giou GIoU(box, target)``, the
    matching cost of DETR: cheap when the query believes in the right class and its box is
    close to the object's.

    Args:
        logits: ``(Q, K + 1)`` class logits of the queries, or ``(B, Q, K + 1)`` for a batch.
        boxes: ``(Q, 4)`` predicted boxes ``(x0, y0, x1, y1)``, or ``(B, Q, 4)``.
        labels: ``(M,)`` long, the true classes, or ``(B, M)``.
        target_boxes: ``(M, 4)`` true boxes ``(x0, y0, x1, y1)``, or ``(B, M, 4)``.
        weights: ``(w_class, w_l1, w_giou)``.

    Returns:
        ``(Q, M)`` costs, or ``(B, Q, M)``.

    Introduced in :ref:`sec-detection`.
    """
    shapes = [tuple(t.shape) for t in (logits, boxes, labels, target_boxes)]
    lead = logits.shape[:-2]
    if not (
        logits.ndim in (2, 3)
        and boxes.shape == (*lead, logits.shape[-2], 4)
        and labels.shape[:-1] == lead
        and labels.ndim == logits.ndim - 1
        and target_boxes.shape == (*labels.shape, 4)
    ):
        raise ValueError(
            "logits, boxes, labels, target_boxes must be (Q, K + 1), (Q, 4), (M,), (M, 4), "
            f"or the same with a batch dimension B in front; got {shapes}"
        )
    w_class, w_l1, w_giou = weights
    prob = logits.softmax(dim=-1)  # (..., Q, K + 1)
    index = labels[..., None, :].expand(*prob.shape[:-1], labels.shape[-1])  # (..., Q, M)
    class_prob = prob.gather(-1, index)  # (..., Q, M): p(label of object m) for query q
    l1 = torch.cdist(boxes, target_boxes, p=1)  # (..., Q, M)
    return -w_class * class_prob + w_l1 * l1 - w_giou * _giou(boxes, target_boxes)


def hungarian_match(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair rows with columns one-to-one at the lowest total cost (the assignment problem).

    Args:
        cost: ``(Q, M)`` with ``Q >= M``: every column (true object) gets one row (query).

    Returns:
        ``(rows, cols)``, two ``(M,)`` long tensors: row ``rows[i]`` goes with column
        ``cols[i]``, sorted by row.

    Introduced in :ref:`sec-detection`.
    """
    cost = _validate.tensor("cost", cost, min_ndim=2)
    if cost.ndim != 2 or cost.shape[0] < cost.shape[1]:
        raise ValueError(f"cost must be (Q, M) with Q >= M, got shape {tuple(cost.shape)}")
    rows, cols = linear_sum_assignment(cost.detach().cpu().numpy())
    return torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)


def set_loss(
    outputs: tuple[torch.Tensor, torch.Tensor],
    targets: torch.Tensor,
    no_object_weight: float = 0.1,
    weights: tuple[float, float, float] = (1.0, 5.0, 2.0),
) -> torch.Tensor:
    """DETR's set loss: match queries to objects, then classify every query and fit the boxes.

    Each image's queries are matched to its objects by :func:`hungarian_match` on
    :func:`match_cost`, whose costs are computed for the whole batch at once. Matched
    queries must predict the object's class and box (L1 and GIoU); the others must predict
    "no object", whose cross-entropy is down-weighted by ``no_object_weight`` because most
    queries are empty.

    Args:
        outputs: ``(logits (B, Q, K + 1), boxes (B, Q, 4))`` from :class:`DETR`, boxes as
            ``(cx, cy, w, h)``.
        targets: ``(B, M, 5)`` rows ``(label, x0, y0, x1, y1)``; label -1 pads.
        no_object_weight: weight of the "no object" class in the cross-entropy, > 0.
        weights: ``(w_class, w_l1, w_giou)``, for the cost and for the loss.

    Returns:
        The scalar loss.

    Introduced in :ref:`sec-detection`.
    """
    logits, boxes = outputs
    targets = _targets(targets)
    no_object_weight = _validate.positive("no_object_weight", no_object_weight)
    b, q, k1 = logits.shape
    boxes = box_cxcywh_to_xyxy(boxes)  # (B, Q, 4)
    real = targets[..., 0] >= 0  # (B, M), False for padding
    labels, true_boxes = targets[..., 0].long().clamp_min(0), targets[..., 1:]
    with torch.no_grad():  # every image's costs at once; padding columns are dropped below
        cost = match_cost(logits, boxes, labels, true_boxes, weights).cpu().numpy()
    real_np = real.cpu().numpy()
    images, queries, objects = [], [], []
    for i in range(b):
        columns = np.flatnonzero(real_np[i])  # the image's true objects
        if len(columns) == 0:
            continue
        rows, cols = hungarian_match(torch.from_numpy(cost[i][:, columns]))
        images.append(np.full(len(rows), i))
        queries.append(rows.numpy())
        objects.append(columns[cols.numpy()])
    classes = torch.full((b, q), k1 - 1, dtype=torch.long, device=logits.device)
    if images:
        image = torch.as_tensor(np.concatenate(images), device=logits.device)
        query = torch.as_tensor(np.concatenate(queries), device=logits.device)
        obj = torch.as_tensor(np.concatenate(objects), device=logits.device)
        classes[image, query] = labels[image, obj]
    class_weight = torch.ones(k1, device=logits.device, dtype=logits.dtype)
    class_weight[-1] = no_object_weight
    loss = weights[0] * F.cross_entropy(logits.reshape(b * q, k1), classes.flatten(), class_weight)
    if images:
        pred = boxes[image, query]  # (n, 4), image by image, queries in order
        true = true_boxes[image, obj]  # (n, 4)
        loss = loss + weights[1] * (pred - true).abs().sum(-1).mean()
        giou = _giou(pred[:, None], true[:, None])[:, 0, 0]  # (n,): each pair alone
        loss = loss + weights[2] * (1 - giou).mean()
    return loss
