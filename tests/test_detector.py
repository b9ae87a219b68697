"""The small DETR: boxes, IoU and GIoU, Hungarian matching, the set loss, AP."""

from __future__ import annotations

import itertools

import pytest
import torch

from attention_book.models import detector


def _pixel_iou(a, b):
    """IoU of integer boxes by counting the pixels on a 20 x 20 grid."""

    def mask(box):
        m = torch.zeros(20, 20, dtype=torch.bool)
        m[box[1] : box[3], box[0] : box[2]] = True
        return m

    ma, mb = mask(a), mask(b)
    return (ma & mb).sum().item() / max((ma | mb).sum().item(), 1)


def test_box_iou_matches_pixel_counts():
    gen = torch.Generator().manual_seed(0)
    corners = torch.randint(0, 20, (12, 2, 2), generator=gen).sort(dim=1).values
    boxes = torch.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], 1)
    boxes[:, 2:] += 1  # at least one pixel wide
    a, b = boxes[:6], boxes[6:]
    got = detector.box_iou(a.float(), b.float())
    want = torch.tensor([[_pixel_iou(x.tolist(), y.tolist()) for y in b] for x in a])
    assert torch.allclose(got, want.float(), atol=1e-6)


def test_box_iou_of_disjoint_boxes_is_zero_not_negative():
    a = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    far = torch.tensor([[2.0, 2.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0]])
    assert detector.box_iou(a, far).tolist() == [[0.0, 1.0]]


def test_generalized_iou_equals_iou_inside_hull_and_goes_negative_outside():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    inside = torch.tensor([[0.0, 0.0, 2.0, 1.0]])  # the hull is a itself
    assert torch.allclose(detector.generalized_box_iou(a, inside), detector.box_iou(a, inside))
    far = torch.tensor([[4.0, 0.0, 6.0, 2.0]])  # hull 6 x 2 = 12, union 8: GIoU = -4/12
    assert torch.allclose(detector.generalized_box_iou(a, far), torch.tensor([[-1 / 3]]))
    farther = torch.tensor([[10.0, 0.0, 12.0, 2.0]])
    assert detector.generalized_box_iou(a, farther) < detector.generalized_box_iou(a, far)


def test_box_conversion():
    boxes = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    assert torch.allclose(detector.box_cxcywh_to_xyxy(boxes), torch.tensor([[0.4, 0.3, 0.6, 0.7]]))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\) boxes, got shape \(2, 3\)"):
        detector.box_cxcywh_to_xyxy(torch.zeros(2, 3))


def test_hungarian_match_is_the_cheapest_assignment():
    gen = torch.Generator().manual_seed(1)
    for q, m in [(4, 2), (5, 3), (3, 3)]:
        cost = torch.rand(q, m, generator=gen)
        rows, cols = detector.hungarian_match(cost)
        assert (
            len(rows) == m
            and len(set(rows.tolist())) == m
            and sorted(cols.tolist()) == list(range(m))
        )
        best = min(
            sum(cost[r, c].item() for c, r in enumerate(perm))
            for perm in itertools.permutations(range(q), m)
        )
        assert cost[rows, cols].sum().item() == pytest.approx(best)
    with pytest.raises(ValueError, match=r"Q >= M, got shape \(2, 3\)"):
        detector.hungarian_match(torch.zeros(2, 3))


def _perfect_outputs(targets, num_queries, num_classes):
    """Outputs that put each object in one query, confidently, and 'no object' elsewhere."""
    b = len(targets)
    logits = torch.full((b, num_queries, num_classes + 1), -10.0)
    logits[..., -1] = 10.0
    boxes = torch.full((b, num_queries, 4), 0.5)
    boxes[..., 2:] = 0.1
    for i in range(b):
        for j, row in enumerate(targets[i]):
            if row[0] < 0:
                continue
            query = num_queries - 1 - j  # any query will do: the matching finds it
            logits[i, query, -1] = -10.0
            logits[i, query, int(row[0])] = 10.0
            x0, y0, x1, y1 = row[1:].tolist()
            boxes[i, query] = torch.tensor([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])
    return logits, boxes


TARGETS = torch.tensor(
    [
        [[0, 0.1, 0.1, 0.3, 0.3], [2, 0.5, 0.5, 0.9, 0.8], [-1, 0, 0, 0, 0]],
        [[1, 0.2, 0.6, 0.4, 0.9], [-1, 0, 0, 0, 0], [-1, 0, 0, 0, 0]],
    ]
)


def test_set_loss_is_small_for_perfect_predictions_and_ignores_query_order():
    logits, boxes = _perfect_outputs(TARGETS, 5, 3)
    perfect = detector.set_loss((logits, boxes), TARGETS)
    assert perfect < 1e-3
    shuffled = detector.set_loss((logits.flip(1), boxes.flip(1)), TARGETS)
    assert torch.allclose(perfect, shuffled)
    moved = boxes.clone()
    moved[..., 0] += 0.05
    assert detector.set_loss((logits, moved), TARGETS) > perfect + 0.1


def test_match_cost_of_a_batch_equals_each_image_alone():
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 5, 4, generator=gen)
    boxes = detector.box_cxcywh_to_xyxy(torch.rand(3, 5, 4, generator=gen) * 0.5 + 0.1)
    labels = torch.randint(0, 3, (3, 2), generator=gen)
    true_boxes = detector.box_cxcywh_to_xyxy(torch.rand(3, 2, 4, generator=gen) * 0.5 + 0.1)
    batch = detector.match_cost(logits, boxes, labels, true_boxes)
    assert batch.shape == (3, 5, 2)
    for i in range(3):
        one = detector.match_cost(logits[i], boxes[i], labels[i], true_boxes[i])
        assert torch.equal(batch[i], one)
        by_hand = (
            -logits[i].softmax(-1)[:, labels[i]]
            + 5 * torch.cdist(boxes[i], true_boxes[i], p=1)
            - 2 * detector.generalized_box_iou(boxes[i], true_boxes[i])
        )
        assert torch.allclose(one, by_hand)
    with pytest.raises(ValueError, match=r"logits, boxes, labels, target_boxes must be"):
        detector.match_cost(logits, boxes, labels[0], true_boxes)


def test_set_loss_matches_a_loop_over_images():
    """The batched matching gives the loss of matching each image on its own."""
    gen = torch.Generator().manual_seed(4)
    targets = torch.cat([TARGETS, TARGETS.flip(1)])  # padding first in the last two rows
    logits = torch.randn(4, 4, 4, generator=gen)
    boxes = torch.rand(4, 4, 4, generator=gen) * 0.5 + 0.2
    corners = detector.box_cxcywh_to_xyxy(boxes)
    classes = torch.full((4, 4), 3)
    pred, true = [], []
    for i in range(4):
        real = targets[i, :, 0] >= 0
        labels, objects = targets[i, real, 0].long(), targets[i, real, 1:]
        cost = detector.match_cost(logits[i], corners[i], labels, objects)
        rows, cols = detector.hungarian_match(cost)
        classes[i, rows] = labels[cols]
        pred.append(corners[i, rows])
        true.append(objects[cols])
    pred, true = torch.cat(pred), torch.cat(true)
    weight = torch.tensor([1.0, 1.0, 1.0, 0.1])
    want = (
        torch.nn.functional.cross_entropy(logits.reshape(16, 4), classes.flatten(), weight)
        + 5 * (pred - true).abs().sum(-1).mean()
        + 2 * (1 - detector.generalized_box_iou(pred, true).diagonal()).mean()
    )
    assert torch.allclose(detector.set_loss((logits, boxes), targets), want)
    with pytest.raises(ValueError, match=r"Q >= M"):  # more objects than queries
        detector.set_loss((logits[:, :1], boxes[:, :1]), targets)


def test_set_loss_gradients_reach_every_output():
    logits = torch.randn(2, 4, 4, requires_grad=True)
    boxes = torch.rand(2, 4, 4, requires_grad=True)
    detector.set_loss((logits, boxes), TARGETS).backward()
    assert logits.grad.abs().sum() > 0 and boxes.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"targets must be \(B, M, 5\)"):
        detector.set_loss((logits, boxes), TARGETS[..., :4])


def test_average_precision_by_hand():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    correct = torch.tensor([True, False, True, False])
    # precision at the two hits: 1 and 2/3; recall steps of 1/3 (three true objects)
    assert detector.average_precision(scores, correct, 3) == pytest.approx((1 + 2 / 3) / 3)
    assert detector.average_precision(scores, torch.ones(4, dtype=torch.bool), 4) == 1.0
    # a miss ranked first costs precision at every recall
    assert detector.average_precision(scores, correct.flip(0), 2) == pytest.approx(
        0.5 * 0.5 + 0.5 * 0.5
    )


def test_detection_ap_is_one_for_perfect_and_counts_duplicates_as_misses():
    logits, boxes = _perfect_outputs(TARGETS, 5, 3)
    assert detector.detection_ap((logits, boxes), TARGETS)[0] == pytest.approx(1.0)
    dup_logits, dup_boxes = logits.clone(), boxes.clone()
    dup_logits[0, 0], dup_boxes[0, 0] = logits[0, 4], boxes[0, 4]  # query 0 repeats query 4
    dup_logits[0, 0, 0] = 9.0  # slightly less sure than query 4
    per_class = detector.detection_ap((dup_logits, dup_boxes), TARGETS)[1]
    assert per_class[0] == pytest.approx(1.0)  # the duplicate ranks after the hit: AP intact
    dup_logits[0, 0, 0] = 20.0  # the duplicate is surer: it claims the object, query 4 misses
    assert detector.detection_ap((dup_logits, dup_boxes), TARGETS)[1][0] == pytest.approx(1.0)
    dup_boxes[0, 0, 0] += 0.3  # now the surer one is off target: a miss ranked first
    assert detector.detection_ap((dup_logits, dup_boxes), TARGETS)[1][0] == pytest.approx(0.5)
    wrong = (logits.clone(), boxes.clone())
    wrong[1][0, 4, 0] += 0.5  # the class-0 box moves away: a miss
    assert detector.detection_ap(wrong, TARGETS)[1][0] == 0.0


def test_detr_shapes_attention_and_errors():
    torch.manual_seed(0)
    model = detector.DETR(num_classes=3, num_queries=5)
    logits, boxes = model(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 5, 4) and boxes.shape == (2, 5, 4)
    assert ((boxes > 0) & (boxes < 1)).all()
    maps = model.cross_attention()
    assert maps.shape == (2, 5, 8, 8)
    assert torch.allclose(maps.sum(dim=(-2, -1)), torch.ones(2, 5), atol=1e-5)
    assert model.positions(8, 8).shape == (64, 64)
    with pytest.raises(ValueError, match=r"images must be \(B, 3, H, W\), got shape \(3, 32, 32\)"):
        model(torch.rand(3, 32, 32))
    with pytest.raises(RuntimeError, match="run a forward pass first"):
        detector.DETR(3).cross_attention()
    with pytest.raises(ValueError, match="divisible by 4"):
        detector.DETR(3, d_model=66, num_heads=2)
