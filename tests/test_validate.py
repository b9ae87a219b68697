"""The shared argument checks of ``attention_book._validate``."""

from __future__ import annotations

import pytest
import torch

from attention_book import _validate


@pytest.mark.parametrize(
    ("shape", "fits"),
    [
        ((3, 5), True),  # equal
        ((5,), True),  # trailing dims equal
        ((1, 5), True),
        ((3, 1), True),
        ((), True),  # a scalar broadcasts to anything
        ((2, 3, 5), False),  # would grow the target
        ((4, 5), False),
        ((3, 2), False),
    ],
)
def test_broadcasts_to_accepts_only_shapes_that_keep_the_target(shape, fits):
    assert _validate.broadcasts_to(shape, (3, 5)) is fits
    assert _validate.broadcasts_to(torch.Size(shape), (3, 5)) is fits
