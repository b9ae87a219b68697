"""A small DETR (Carion et al., 2020): object queries that find objects by cross-attention.

A CNN turns the image into a grid of features; each cell gets a 2-D position code and
becomes a memory token. A fixed number of learned **object queries** go through a
Transformer decoder (:class:`attention_book.models.transformer.Decoder`), reading the
memory by cross-attention, and each query predicts one box and one class, possibly "no
object". Training matches predictions to the true objects one-to-one with the Hungarian
algorithm (Kuhn, 1955; ``scipy.optimize.linear_sum_assignment`` solves the same problem with a
Jonker-Volgenant-style shortest augmenting path), so the loss is a loss on
*sets*: no anchors, no non-maximum suppression.

Boxes are ``(x0, y0, x1, y1)`` in units of the image side (``[0, 1]``), except where a
function says ``cxcywh`` (centre and size, what the model predicts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from torch.nn import functional as F

from .. import _validate
from .cnn_attention import conv_backbone
from .transformer import Decoder, sinusoidal_positions

__all__ = [
    "DETR",
    "average_precision",
    "box_cxcywh_to_xyxy",
    "box_iou",
    "detection_ap",
    "generalized_box_iou",
    "hungarian_match",
    "match_cost",
    "set_loss",
]


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


class DETR(nn.Module):
    """A DEtection TRansformer: CNN features, learned object queries, a decoder, two heads.

    ``forward(images)`` returns ``(logits (B, Q, num_classes + 1), boxes (B, Q, 4))``, the
    boxes as ``(cx, cy, w, h)`` in ``[0, 1]``; the last class is "no object". After a
    forward pass, ``cross_attention()`` gives each query's attention over the grid.

    The package's decoder layer masks its self-attention causally, so query ``i`` sees the
    queries before it only; DETR's queries see each other in full. Either way a query can
    learn not to repeat what another one found.

    Introduced in :ref:`sec-detection`.
    """

    def __init__(
        self,
        num_classes: int,
        num_queries: int = 6,
        d_model: int = 64,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int = 128,
        widths: Sequence[int] = (16, 32, 64),
        pool: Sequence[bool] = (True, True, False),
    ) -> None:
        """Create the backbone, the position codes, the queries, the decoder and the heads.

        Args:
            num_classes: object classes, > 0, not counting "no object".
            num_queries: object queries ``Q``, > 0: the most objects one image can hold.
            d_model: size of the decoder's vectors, > 0, divisible by ``num_heads``, even.
            num_heads: attention heads, > 0.
            num_layers: decoder layers, > 0.
            d_ff: hidden size of the decoder's feed-forward layers, > 0.
            widths: channels of the backbone's 3x3 convolutions.
            pool: after which convolutions to halve the grid.
        """
        super().__init__()
        self.num_classes = _validate.positive_int("num_classes", num_classes)
        self.num_queries = _validate.positive_int("num_queries", num_queries)
        self.d_model = _validate.positive_int("d_model", d_model)
        if d_model % 4:
            raise ValueError(f"d_model must be divisible by 4 (2-D sine codes), got {d_model}")
        self.backbone = conv_backbone(3, widths, pool)
        self.input_proj = nn.Conv2d(widths[-1], d_model, kernel_size=1)
        self.queries = nn.Parameter(torch.randn(num_queries, d_model))
        self.decoder = Decoder(d_model, num_heads, num_layers, d_ff)
        self.class_head = nn.Linear(d_model, num_classes + 1)
        self.box_head = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(), nn.Linear(d_model, 4))
        self.grid: tuple[int, int] | None = None

    def positions(self, h: int, w: int) -> torch.Tensor:
        """Build the 2-D position codes of an ``(h, w)`` grid: row codes next to column codes.

        Args:
            h: rows of the grid, > 0.
            w: columns of the grid, > 0.

        Returns:
            ``(h * w, d_model)``, in row-major order.
        """
        half = self.d_model // 2
        rows = sinusoidal_positions(h, half)[:, None, :].expand(h, w, half)
        cols = sinusoidal_positions(w, half)[None, :, :].expand(h, w, half)
        return torch.cat([rows, cols], dim=-1).reshape(h * w, self.d_model)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict one class and one box per query.

        Args:
            images: ``(B, 3, H, W)``.

        Returns:
            ``(logits (B, Q, num_classes + 1), boxes (B, Q, 4))``, boxes as ``(cx, cy, w,
            h)`` in ``[0, 1]``.
        """
        _validate.tensor("images", images)
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
        features = self.input_proj(self.backbone(images))  # (B, d_model, h, w)
        b, _, h, w = features.shape
        self.grid = (h, w)
        position = self.positions(h, w).to(features)  # (h * w, d_model)
        memory = features.flatten(2).transpose(1, 2) + position  # (B, h * w, d_model)
        queries = self.queries.expand(b, -1, -1)  # (B, Q, d_model)
        hidden = self.decoder(queries, memory)  # (B, Q, d_model)
        return self.class_head(hidden), self.box_head(hidden).sigmoid()

    def cross_attention(self, layer: int = -1) -> torch.Tensor:
        """Return each query's cross-attention over the grid, averaged over the heads.

        Args:
            layer: which decoder layer, an index into ``decoder.layers``.

        Returns:
            ``(B, Q, h, w)`` weights of the last forward pass; each map sums to one.
        """
        decoder_layer = self.decoder.layers[layer]
        weights = getattr(decoder_layer, "cross_attention_weights", None)
        if not isinstance(weights, torch.Tensor) or self.grid is None:
            raise RuntimeError("no attention weights yet: run a forward pass first")
        b, _, q, _ = weights.shape
        return weights.mean(dim=1).reshape(b, q, *self.grid)


def _targets(targets: torch.Tensor) -> torch.Tensor:
    targets = _validate.tensor("targets", targets)
    if targets.ndim != 3 or targets.shape[-1] != 5:
        raise ValueError(
            f"targets must be (B, M, 5) rows (label, x0, y0, x1, y1), label -1 for padding; "
            f"got shape {tuple(targets.shape)}"
        )
    return targets


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
