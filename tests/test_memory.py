"""The two-level memory simulator: exact attention, and counts equal to the closed forms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attention_book.efficient import (
    IOCount,
    TwoLevelMemory,
    flash_attention_io,
    flash_attention_io_formula,
    flash_block_sizes,
    standard_attention_io,
    standard_attention_io_formula,
)


def qkv(n, d, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, d, generator=g, dtype=dtype) for _ in range(3))


# --- the memory ----------------------------------------------------------------------------


def test_load_and_store_count_the_words_that_cross():
    mem = TwoLevelMemory(10, A=torch.arange(12.0).reshape(4, 3), b=torch.zeros(4))
    block = mem.load("A", slice(1, 3))  # 2 rows of 3
    assert torch.equal(block, torch.tensor([[3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]))
    assert (mem.reads, mem.writes, mem.used) == (6, 0, 6)
    block += 1  # a copy: slow memory is unchanged until a store
    assert mem.slow["A"][1, 0] == 3.0
    mem.store("A", block, slice(1, 3))
    assert mem.slow["A"][1, 0] == 4.0
    col = mem.load("A", slice(None), slice(0, 1))  # one column: 4 words, replaces A's block
    assert col.shape == (4, 1) and mem.used == 4
    mem.store("b", mem.hold("b", col[:2, 0] * 2), slice(0, 2))
    assert (mem.reads, mem.writes, mem.total, mem.used) == (10, 8, 18, 6)
    assert mem.count() == IOCount(reads=10, writes=8) and mem.count().total == 18
    mem.free("A", "b", "not held")
    assert mem.used == 0 and mem.fast == {}


def test_fast_memory_refuses_what_does_not_fit():
    mem = TwoLevelMemory(8, A=torch.zeros(4, 3))
    mem.load("A", slice(0, 2))
    with pytest.raises(ValueError, match=r"holds 8 words, 6 are in use \(A 6\) and S needs 4"):
        mem.hold("S", torch.zeros(2, 2))
    mem.load("A", slice(0, 1))  # replacing a block frees the old one first
    assert mem.used == 3
    mem.hold("S", torch.zeros(5))
    assert mem.used == 8


def test_the_memory_rejects_misuse():
    mem = TwoLevelMemory(100, A=torch.zeros(4, 3), v=torch.zeros(4))
    with pytest.raises(ValueError, match="store writes from fast memory"):
        mem.store("A", torch.ones(1, 3), slice(0, 1))
    with pytest.raises(ValueError, match=r"slow memory holds \['A', 'v'\], not 'B'"):
        mem.load("B")
    with pytest.raises(ValueError, match="v is a vector"):
        mem.load("v", slice(0, 2), slice(0, 1))
    with pytest.raises(TypeError, match="fast_words must be an int"):
        TwoLevelMemory(10.0)
    with pytest.raises(ValueError, match="fast_words must be > 0"):
        TwoLevelMemory(0)
    with pytest.raises(TypeError, match="A must be a torch.Tensor"):
        TwoLevelMemory(10, A=[1.0])


# --- exact attention -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "d", "fast_words"),
    [
        (10, 3, 40),
        (37, 8, 200),
        (64, 16, 10_000),
        (5, 4, 19),
        (100, 4, 50),
        (33, 5, 23),
        (1, 2, 11),
    ],
)
def test_outputs_equal_pytorch(n, d, fast_words):
    q, k, v = qkv(n, d)
    want = F.scaled_dot_product_attention(q, k, v)
    for out, _ in (
        standard_attention_io(q, k, v, fast_words),
        flash_attention_io(q, k, v, fast_words, order="fa1"),
        flash_attention_io(q, k, v, fast_words, order="fa2"),
    ):
        torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


def test_outputs_follow_scale_block_size_and_dtype():
    q, k, v = qkv(20, 4, dtype=torch.float32)
    want = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    for order in ("fa1", "fa2"):
        out, _ = flash_attention_io(q, k, v, 500, order=order, scale=0.3, block_size=(3, 7))
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, want, atol=1e-5, rtol=0)
    out, _ = standard_attention_io(q, k, v, 30, scale=0.3)  # rows of 20 + 2 words fit
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


def test_large_scores_do_not_overflow():
    q, k, v = qkv(12, 4)
    want = F.scaled_dot_product_attention(q * 300, k, v)
    for order in ("fa1", "fa2"):
        out, _ = flash_attention_io(q * 300, k, v, 60, order=order)
        torch.testing.assert_close(out, want, atol=1e-5, rtol=0)
    out, _ = standard_attention_io(q * 300, k, v, 9)  # rows do not fit: the two-pass softmax
    torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


# --- exact counts --------------------------------------------------------------------------


def test_counts_by_hand_on_tiny_cases():
    q, k, v = qkv(4, 2)  # N = 4, d = 2: each matrix N x d is 8 words, N x N 16
    # FA-2, blocks of 2: Q read once (8); K and V once per query block (2 * 16); O (8), L (4)
    assert flash_attention_io(q, k, v, 100, "fa2", block_size=(2, 2))[1] == IOCount(40, 12)
    # FA-1, blocks of 2: K, V once (16); per key block Q, O (16) and l, m (8) read, O, l, m
    # (8 + 8) written
    assert flash_attention_io(q, k, v, 100, "fa1", block_size=(2, 2))[1] == IOCount(64, 32)
    # the inner block does not change the count: the inner loop reads all of its tensors
    assert flash_attention_io(q, k, v, 100, "fa1", block_size=(1, 2))[1] == IOCount(64, 32)
    assert flash_attention_io(q, k, v, 100, "fa2", block_size=(2, 1))[1] == IOCount(40, 12)
    # standard, M = 12: tiles b = 2 (2bd + b^2 = 12), rows of S fit (4 + 2 <= 12); reads Q (8),
    # K twice (16), S (16), P (16), V twice (16); writes S (16), P (16), O (8)
    assert standard_attention_io(q, k, v, 12)[1] == IOCount(72, 40)
    # standard, d = 1, M = 5: b = 1 (T = 4), rows of 4 + 2 > 5 words: S is read twice
    q, k, v = qkv(4, 1)
    assert standard_attention_io(q, k, v, 5)[1] == IOCount(4 + 2 * 4 * 4 + 3 * 16, 32 + 4)


@pytest.mark.parametrize(
    ("n", "d", "fast_words"),
    [(10, 3, 15), (10, 3, 40), (37, 8, 200), (50, 4, 51), (64, 16, 10_000), (33, 5, 23)],
)
def test_measured_counts_equal_the_closed_forms(n, d, fast_words):
    q, k, v = qkv(n, d)
    _, count = standard_attention_io(q, k, v, fast_words)
    assert count == standard_attention_io_formula(n, d, fast_words)
    for order in ("fa1", "fa2"):
        _, count = flash_attention_io(q, k, v, max(fast_words, 4 * d + 3), order)
        assert count == flash_attention_io_formula(n, d, max(fast_words, 4 * d + 3), order)
        blocks = (3, 5) if d < 8 else (4, 6)
        _, count = flash_attention_io(q, k, v, 10_000, order, block_size=blocks)
        assert count == flash_attention_io_formula(n, d, 10_000, order, block_size=blocks)


def test_the_paper_counts_every_matrix_once_for_standard_attention():
    n, d = 32, 4
    assert standard_attention_io_formula(n, d) == IOCount(3 * n * d + 2 * n * n, 2 * n * n + n * d)
    assert standard_attention_io_formula(n, d).total == 4 * n * n + 4 * n * d
    q, k, v = qkv(n, d)
    big = n * n + 2 * n * d  # a tile of all of S with all of Q and K fits
    assert standard_attention_io(q, k, v, big)[1] == standard_attention_io_formula(n, d)
    assert (
        standard_attention_io(q, k, v, big - 1)[1].total > standard_attention_io_formula(n, d).total
    )


def test_fast_memory_is_used_exactly_as_claimed(monkeypatch):
    peak = [0]
    hold = TwoLevelMemory.hold

    def spy(self, name, value):
        out = hold(self, name, value)
        peak[0] = max(peak[0], self.used)
        return out

    monkeypatch.setattr(TwoLevelMemory, "hold", spy)
    q, k, v = qkv(24, 4)
    for order in ("fa1", "fa2"):
        peak[0] = 0
        flash_attention_io(q, k, v, 1000, order, block_size=(6, 8))
        assert peak[0] == 2 * 4 * (6 + 8) + 2 * 6 + 6 * 8  # Q, O, K, V blocks, l, m, S tile
    peak[0] = 0
    standard_attention_io(q, k, v, 2 * 6 * 4 + 6 * 6)  # tiles b = 6, rows of S fit
    assert peak[0] == 2 * 6 * 4 + 6 * 6


def test_default_blocks_follow_the_paper_and_fit():
    # large M: the outer block floor(M / 4d), the inner min(outer, d), as in Algorithm 1
    assert flash_block_sizes(4096, 64, 100_000, "fa1") == (64, 390)
    assert flash_block_sizes(4096, 64, 100_000, "fa2") == (390, 64)
    assert flash_block_sizes(100, 64, 100_000, "fa2") == (100, 64)  # at most N
    for d in (1, 2, 3, 8):
        for fast_words in range(4 * d + 3, 40 * d):
            for order in ("fa1", "fa2"):
                bq, bk = flash_block_sizes(10**6, d, fast_words, order)
                assert bq >= 1 and bk >= 1
                assert 2 * d * (bq + bk) + 2 * bq + bq * bk <= fast_words
    q, k, v = qkv(9, 3)
    for order in ("fa1", "fa2"):  # the smallest memory: one row of each block
        assert flash_block_sizes(9, 3, 15, order) == (1, 1)
        torch.testing.assert_close(
            flash_attention_io(q, k, v, 15, order)[0], F.scaled_dot_product_attention(q, k, v)
        )


# --- how the counts scale ------------------------------------------------------------------


def test_fa2_moves_fewer_words_than_fa1():
    for n in (1, 7, 64, 300, 2048):
        for d in (1, 4, 16, 64):
            for fast_words in (4 * d + 3, 10 * d, 64 * d, 1000 * d, 10**7):
                fa1 = flash_attention_io_formula(n, d, fast_words, "fa1").total
                fa2 = flash_attention_io_formula(n, d, fast_words, "fa2").total
                assert fa2 < fa1, (n, d, fast_words)
    q, k, v = qkv(128, 16)
    assert flash_attention_io(q, k, v, 2048, "fa2")[1].total < (
        flash_attention_io(q, k, v, 2048, "fa1")[1].total
    )


@pytest.mark.parametrize("order", ["fa1", "fa2"])
def test_flash_count_grows_as_n_squared_d_squared_over_m(order):
    def total(n, d, fast_words):
        return flash_attention_io_formula(n, d, fast_words, order).total

    d, m = 64, 16 * 1024
    q, k, v = qkv(1024, d, dtype=torch.float32)
    assert flash_attention_io(q, k, v, m, order)[1].total == total(1024, d, m)  # the sim agrees
    assert 3.6 < total(4096, d, m) / total(2048, d, m) <= 4.0  # doubling N: about 4x
    assert 0.45 < total(4096, d, 2 * m) / total(4096, d, m) < 0.56  # doubling M: about half
    assert 0.95 < total(4096, 2 * d, 4 * m) / total(4096, d, m) < 1.05  # only d^2 / M counts
    leading = 12 if order == "fa1" else 8  # words per N^2 d^2 / M, from the docstring
    for n, dd, mm in [(4096, 64, m), (4096, 64, 100_000), (8192, 128, 65_536), (4096, 32, 8192)]:
        ratio = total(n, dd, mm) / (n * n * dd * dd / mm)
        assert leading < ratio < 1.4 * leading, (n, dd, mm, ratio)


def test_standard_count_grows_as_n_squared_and_loses_to_flash_when_m_is_large():
    d, m = 64, 100_000
    counts = {n: standard_attention_io_formula(n, d, m).total for n in (1024, 2048, 4096)}
    assert 3.6 < counts[2048] / counts[1024] < 4.1 and 3.6 < counts[4096] / counts[2048] < 4.1
    assert 4 < counts[4096] / 4096**2 < 6  # 4N^2 + 4Nd plus K and V read once per query tile
    q, k, v = qkv(512, d, dtype=torch.float32)
    standard = standard_attention_io(q, k, v, m)[1].total
    assert standard == standard_attention_io_formula(512, d, m).total
    assert flash_attention_io(q, k, v, m)[1].total < standard / 4


# --- bad input -----------------------------------------------------------------------------


def test_bad_input_is_named():
    q, k, v = qkv(6, 2)
    for fn in (standard_attention_io, flash_attention_io):
        with pytest.raises(TypeError, match="q must be a torch.Tensor, got list"):
            fn([[1.0]], k, v, 100)
        with pytest.raises(ValueError, match=r"no batch dims\), got shape \(1, 6, 2\)"):
            fn(q[None], k, v, 100)
        with pytest.raises(ValueError, match=r"k must be \(N, d\) like q \(6, 2\), got \(6, 3\)"):
            fn(q, torch.zeros(6, 3, dtype=q.dtype), v, 100)
        with pytest.raises(ValueError, match=r"v must be \(N, d\) like q \(6, 2\), got \(5, 2\)"):
            fn(q, k, v[:5], 100)
        with pytest.raises(TypeError, match="k must have q's dtype and device"):
            fn(q, k.float(), v, 100)
        with pytest.raises(TypeError, match="fast_words must be an int"):
            fn(q, k, v, 100.0)
        with pytest.raises(ValueError, match="scale must be a finite number > 0"):
            fn(q, k, v, 100, scale=-1.0)
    with pytest.raises(ValueError, match=r"fast_words must be >= 2d \+ 1 = 5 \(a row of Q"):
        standard_attention_io(q, k, v, 4)
    with pytest.raises(ValueError, match=r"fast_words must be >= 4d \+ 3 = 11 \(a row of Q"):
        flash_attention_io(q, k, v, 10)
    with pytest.raises(ValueError, match="order must be 'fa1' .* or 'fa2' .*, got 'fa3'"):
        flash_attention_io(q, k, v, 100, order="fa3")
    with pytest.raises(ValueError, match=r"block_size \(4, 4\) needs .* = 56 words .* is 55"):
        flash_attention_io(q, k, v, 55, block_size=(4, 4))
    with pytest.raises(TypeError, match="block_size must be a pair"):
        flash_attention_io(q, k, v, 100, block_size=4)
    with pytest.raises(ValueError, match=r"block_size\[1\] must be > 0"):
        flash_attention_io(q, k, v, 100, block_size=(4, 0))
    with pytest.raises(ValueError, match="n must be > 0"):
        flash_attention_io_formula(0, 4, 100)
    with pytest.raises(TypeError, match="d must be an int"):
        standard_attention_io_formula(4, 2.0, 100)
    with pytest.raises(ValueError, match=r"fast_words must be >= 4d \+ 3 = 35"):
        flash_block_sizes(100, 8, 34)


def test_the_thread_count_is_restored():
    before = torch.get_num_threads()
    q, k, v = qkv(6, 2)
    flash_attention_io(q, k, v, 100)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError):
        standard_attention_io(q, k, v, 4)
    assert torch.get_num_threads() == before
