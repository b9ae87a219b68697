"""``checks.ch5_vit``: each checker accepts the reference and rejects wrong answers."""

import pytest
import torch

from attention_book import checks

# --- chapter 5: vision ----------------------------------------------------------------------


def student_patchify(images, patch_size, mistake=None):
    """A student's patchify; ``mistake`` switches on a typical error."""
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)  # (B, C, gh, p, gw, p)
    order = {
        None: (0, 2, 4, 1, 3, 5),
        "transposed_patches": (0, 2, 4, 1, 5, 3),  # each patch read column by column
        "column_major_grid": (0, 4, 2, 1, 3, 5),  # patches read down the columns first
        "channel_last": (0, 2, 4, 3, 5, 1),  # (p, p, C) instead of (C, p, p)
    }
    if mistake == "plain_reshape":
        return images.reshape(b, -1, c * p * p)
    return x.permute(*order[mistake]).reshape(b, (h // p) * (w // p), c * p * p)


def test_check_patchify_accepts_reference_and_the_package(capsys):
    from attention_book.models.vit import patchify

    assert checks.check_patchify(student_patchify) is True
    assert checks.check_patchify(patchify) is True
    assert capsys.readouterr().out.count("passes all 8 checks") == 2


@pytest.mark.parametrize(
    ("mistake", "named_property"),
    [
        ("transposed_patches", "patch 0 is the top-left 2 x 2 block"),
        ("column_major_grid", "the patches go left to right, then down"),
        ("channel_last", "flattened channel first"),
        ("plain_reshape", "patch 0 is the top-left 2 x 2 block"),
    ],
)
def test_check_patchify_rejects_wrong_answers(mistake, named_property, capsys):
    assert checks.check_patchify(lambda x, p: student_patchify(x, p, mistake)) is False
    assert named_property in capsys.readouterr().out


def test_check_patchify_reports_crashes_and_in_place_edits(capsys):
    def in_place(images, patch_size):
        out = student_patchify(images.clone(), patch_size)
        images.add_(1.0)
        return out

    assert checks.check_patchify(in_place) is False
    assert "the input is left unchanged" in capsys.readouterr().out
    assert checks.check_patchify(lambda x, p: x.reshape(len(x), -1, 5)) is False
    assert "raised RuntimeError" in capsys.readouterr().out
    with pytest.raises(TypeError, match="fn must be a function, got int"):
        checks.check_patchify(3)


def student_distance(weights, grid, mistake=None):
    """A student's mean attention distance in patches; ``mistake`` switches on an error."""
    gh, gw = grid
    index = torch.arange(gh * gw)
    rows, cols = index // gw, index % gw
    if mistake == "column_major":
        rows, cols = index % gh, index // gh
    pos = torch.stack([rows, cols], dim=-1).to(weights.dtype)  # (N, 2)
    diff = pos[:, None] - pos[None]  # (N, N, 2)
    if mistake == "manhattan":
        dist = diff.abs().sum(-1)
    else:
        dist = diff.pow(2).sum(-1).sqrt()
    per_query = (weights * dist).sum(-1)  # (..., N)
    if mistake == "unweighted":
        per_query = dist.mean(-1).expand(per_query.shape)
    return per_query.sum(-1) if mistake == "sum_over_queries" else per_query.mean(-1)


def test_check_mean_attention_distance_accepts_reference_and_the_package(capsys):
    from attention_book.models.vit import mean_attention_distance

    assert checks.check_mean_attention_distance(student_distance) is True
    assert checks.check_mean_attention_distance(mean_attention_distance) is True
    assert capsys.readouterr().out.count("passes all 6 checks") == 2


@pytest.mark.parametrize(
    ("mistake", "named_property"),
    [
        ("manhattan", "sqrt(2) apart"),
        ("column_major", "every patch on its row neighbour: 1"),
        ("unweighted", "every patch on itself: 0"),
        ("sum_over_queries", "every patch on its row neighbour: 1"),
    ],
)
def test_check_mean_attention_distance_rejects_wrong_answers(mistake, named_property, capsys):
    wrong = lambda w, g: student_distance(w, g, mistake)  # noqa: E731
    assert checks.check_mean_attention_distance(wrong) is False
    assert named_property in capsys.readouterr().out
