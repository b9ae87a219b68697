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


def test_environment_shifts_every_seed_and_keeps_them_distinct(monkeypatch):
    from attention_book import effective_seed

    monkeypatch.delenv("ATTENTION_BOOK_SEED", raising=False)
    assert [effective_seed(s) for s in (0, 1, 2)] == [0, 1, 2]
    monkeypatch.setenv("ATTENTION_BOOK_SEED", "0")
    assert effective_seed(5) == 5
    monkeypatch.setenv("ATTENTION_BOOK_SEED", "2")
    shifted = [effective_seed(s) for s in (0, 1, 2)]
    assert shifted == [2_000_006, 2_000_007, 2_000_008]
    assert effective_seed(2**32 - 1) == (2**32 - 1 + 2_000_006) % 2**32


def test_environment_changes_what_seed_everything_and_generator_draw(monkeypatch):
    from attention_book import make_generator

    monkeypatch.delenv("ATTENTION_BOOK_SEED", raising=False)
    seed_everything(0)
    book = draw()
    own = torch.rand(3, generator=make_generator(0))
    monkeypatch.setenv("ATTENTION_BOOK_SEED", "1")
    seed_everything(0)
    assert draw() != book
    assert not torch.equal(torch.rand(3, generator=make_generator(0)), own)
    g = make_generator(0)
    seed_everything(0)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3))  # one seed, both streams


@pytest.mark.parametrize("value", ["-1", "one", "1.5"])
def test_rejects_a_malformed_environment_seed(monkeypatch, value):
    monkeypatch.setenv("ATTENTION_BOOK_SEED", value)
    with pytest.raises(ValueError, match="ATTENTION_BOOK_SEED must be a non-negative integer"):
        seed_everything(0)
