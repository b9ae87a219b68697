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

Each idea has its own module: ``boxes`` (conversions, IoU and GIoU), ``model``
(:class:`DETR`), ``matching`` (the matching cost, the Hungarian matching and the set loss)
and ``metrics`` (average precision). Import everything from here:
``from attention_book.models import detector``.
"""

from __future__ import annotations

from ..._facade import adopt
from .boxes import box_cxcywh_to_xyxy, box_iou, generalized_box_iou
from .matching import hungarian_match, match_cost, set_loss
from .metrics import average_precision, detection_ap
from .model import DETR

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

adopt(globals(), __all__)  # document and pickle them under this package
