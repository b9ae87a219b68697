import random

import numpy as np
import pytest
import torch

from attention_book import seed_everything


def draw() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))  # noqa: NPY002


def test_same_seed_same_draws_from_every_library():
    seed_everything(7)
    first = draw()
    seed_everything(7)
    assert draw() == first


def test_other_seed_other_draws():
    seed_everything(7)
    first = draw()
    seed_everything(8)
    assert draw() != first


def test_returns_generator_seeded_independently_of_global_state():
    g = seed_everything(3)
    torch.rand(100)  # consuming the global stream must not move the returned generator
    a = torch.rand(4, generator=g)
    assert torch.equal(a, torch.rand(4, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_rejects_out_of_range_seed(seed):
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\)"):
        seed_everything(seed)


@pytest.mark.parametrize("seed", [1.5, "3", None, True])
def test_rejects_non_int_seed(seed):
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_everything(seed)
