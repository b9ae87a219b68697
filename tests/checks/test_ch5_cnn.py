"""``checks.ch5_cnn``: each checker accepts the reference and rejects wrong answers."""

import pytest
import torch
from torch import nn

from attention_book import checks

# --- chapter 5: vision ---------------------------------------------------------------------


def box_iou_reference(a, b):
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def box_iou_no_clamp(a, b):
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).prod(-1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def box_iou_xywh(a, b):
    def corners(x):
        return torch.cat([x[:, :2], x[:, :2] + x[:, 2:]], dim=-1)

    return box_iou_reference(corners(a), corners(b))


def box_iou_over_min_area(a, b):
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / torch.minimum(area_a[:, None], area_b[None, :])


def test_check_box_iou_accepts_reference_and_the_package(capsys):
    from attention_book.models.detector import box_iou

    assert checks.check_box_iou(box_iou_reference) is True
    assert checks.check_box_iou(box_iou) is True
    assert capsys.readouterr().out.count("passes all 6 checks") == 2


@pytest.mark.parametrize(
    ("fn", "named_property"),
    [
        (box_iou_no_clamp, "apart on both axes"),
        (box_iou_xywh, "not x, y, w, h"),
        (box_iou_over_min_area, "half-overlapping boxes: IoU = 4 / 12"),
        (lambda a, b: box_iou_reference(a, b).T, "shape (N, M) = (2, 3)"),
    ],
)
def test_check_box_iou_rejects_wrong_answers(fn, named_property, capsys):
    assert checks.check_box_iou(fn) is False
    assert named_property in capsys.readouterr().out


class StudentSE(nn.Module):
    pool = "mean"
    gate = "sigmoid"

    def __init__(self, channels, reduction):
        super().__init__()
        self.squeeze = nn.Linear(channels, channels // reduction)
        self.excite = nn.Linear(channels // reduction, channels)

    def forward(self, x):
        pooled = x.mean(dim=(2, 3)) if self.pool == "mean" else x.amax(dim=(2, 3))
        scores = self.excite(torch.relu(self.squeeze(pooled)))
        gates = torch.sigmoid(scores) if self.gate == "sigmoid" else torch.softmax(scores, -1)
        return x * gates[:, :, None, None]


class SEWithMaxPool(StudentSE):
    pool = "max"


class SEWithSoftmax(StudentSE):
    gate = "softmax"


class SENoBottleneck(StudentSE):
    def __init__(self, channels, reduction):
        super().__init__(channels, 1)


class SEResidual(StudentSE):
    def forward(self, x):
        return x + super().forward(x)


def test_check_squeeze_excitation_accepts_reference_and_the_package(capsys):
    from attention_book.models.cnn_attention import SqueezeExcitation

    assert checks.check_squeeze_excitation(StudentSE) is True
    assert checks.check_squeeze_excitation(SqueezeExcitation) is True
    assert capsys.readouterr().out.count("passes all 4 checks") == 2


@pytest.mark.parametrize(
    ("cls", "named_property"),
    [
        (SEWithMaxPool, "squeeze(channel means)"),
        (SEWithSoftmax, "output = x * sigmoid"),
        (SENoBottleneck, "squeeze = Linear(8, 2)"),
        (SEResidual, "output = x * sigmoid"),
    ],
)
def test_check_squeeze_excitation_rejects_wrong_answers(cls, named_property, capsys):
    assert checks.check_squeeze_excitation(cls) is False
    assert named_property in capsys.readouterr().out


def penalty_reference(weights, mask):
    total = (weights * mask[..., None]).sum(dim=1)
    return ((1 - total) ** 2).sum(dim=1).mean()


@pytest.mark.parametrize(
    ("fn", "named_property"),
    [
        (lambda w, m: ((1 - w.sum(dim=1)) ** 2).sum(dim=1).mean(), "padded steps"),
        (
            lambda w, m: ((1 - (w * m[..., None]).sum(dim=2)) ** 2).sum(dim=1).mean(),
            "sum over the steps",
        ),
        (
            lambda w, m: ((1 - (w * m[..., None]).sum(dim=1)) ** 2).mean(),
            "all steps on one cell",
        ),
        (
            lambda w, m: ((1 - (w * m[..., None]).sum(dim=1)) ** 2).sum(),
            "the mean over the images",
        ),
    ],
)
def test_check_doubly_stochastic_penalty(fn, named_property, capsys):
    assert checks.check_doubly_stochastic_penalty(penalty_reference) is True
    assert "passes all 4 checks" in capsys.readouterr().out
    assert checks.check_doubly_stochastic_penalty(fn) is False
    assert named_property in capsys.readouterr().out


@pytest.mark.parametrize("checker", [checks.check_box_iou, checks.check_doubly_stochastic_penalty])
def test_chapter_5_checkers_reject_non_functions(checker):
    with pytest.raises(TypeError, match="fn must be a function, got int"):
        checker(3)
    with pytest.raises(TypeError, match="cls must be a class, got StudentSE"):
        checks.check_squeeze_excitation(StudentSE(8, 4))
