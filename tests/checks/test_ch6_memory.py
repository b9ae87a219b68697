"""``checks.ch6_memory``: the checker accepts the reference and rejects wrong answers."""

import math

import pytest

from attention_book import checks
from attention_book.efficient import flash_attention_io_formula

# --- chapter 6: the memory hierarchy -------------------------------------------------------


def flash_io_count(n, d, block_q, block_k, order):
    """The reference solution, as on the page."""
    if order == "fa1":  # K, V read once; per key/value block: Q, O, l, m read; O, l, m written
        passes = math.ceil(n / block_k)
        return 2 * n * d + passes * (3 * n * d + 4 * n)
    passes = math.ceil(n / block_q)  # per query block: K, V read; Q read, O and L written once
    return 2 * n * d + n + 2 * n * d * passes


def _fa1_writes_o_once(n, d, block_q, block_k, order):  # FA-1 keeps O on chip, as FA-2 does
    if order == "fa1":
        passes = math.ceil(n / block_k)
        return 2 * n * d + passes * (n * d + 4 * n) + 2 * n * d
    return flash_io_count(n, d, block_q, block_k, order)


def _kv_once(n, d, block_q, block_k, order):  # FA-2 reads K and V once, not once per block
    return 4 * n * d + n if order == "fa2" else flash_io_count(n, d, block_q, block_k, order)


def _floor_passes(n, d, block_q, block_k, order):  # drops the last, shorter block
    if order == "fa1":
        return 2 * n * d + n // block_k * (3 * n * d + 4 * n)
    return 2 * n * d + n + 2 * n * d * (n // block_q)


def _forgets_l_and_m(n, d, block_q, block_k, order):  # FA-1 moves O but not l and m
    if order == "fa1":
        return 2 * n * d + math.ceil(n / block_k) * 3 * n * d
    return flash_io_count(n, d, block_q, block_k, order)


def _forgets_lse(n, d, block_q, block_k, order):  # FA-2 without writing L for the backward pass
    return flash_io_count(n, d, block_q, block_k, order) - (n if order == "fa2" else 0)


def _swapped_blocks(n, d, block_q, block_k, order):  # passes counted by the inner loop's block
    return flash_io_count(n, d, block_k, block_q, order)


def _reads_only(n, d, block_q, block_k, order):  # forgets the writes
    return flash_attention_io_formula(n, d, 10**9, order, block_size=(block_q, block_k)).reads


def _a_float(n, d, block_q, block_k, order):  # n / block without rounding up
    block = block_k if order == "fa1" else block_q
    if order == "fa1":
        return 2 * n * d + n / block * (3 * n * d + 4 * n)
    return 2 * n * d + n + 2 * n * d * n / block


def test_accepts_the_reference_and_the_closed_form(capsys):
    assert checks.check_flash_io_count(flash_io_count) is True
    assert "passes all 10 checks" in capsys.readouterr().out

    def package(n, d, block_q, block_k, order):
        return flash_attention_io_formula(n, d, 10**9, order, block_size=(block_q, block_k)).total

    assert checks.check_flash_io_count(package) is True


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (_fa1_writes_o_once, "FA-1, blocks divide N: Q, O, l and m every pass"),
        (_kv_once, "FA-2, blocks divide N"),
        (_floor_passes, "N = 10, query blocks of 4: a last block of 2 rows"),
        (_forgets_l_and_m, "FA-1, blocks divide N: Q, O, l and m every pass"),
        (_forgets_lse, "FA-2, blocks divide N: Q, O, L once"),
        (_swapped_blocks, "FA-1: block_k, the outer loop's, sets the passes"),
        (_reads_only, "FA-2, blocks divide N"),
        (_a_float, "N = 10, query blocks of 4: a last block of 2 rows"),
        (lambda n, d, bq, bk, order: str(flash_io_count(n, d, bq, bk, order)), "FA-2"),
        (lambda n, d, bq, bk, order: 1 / 0, "calling it raised ZeroDivisionError"),
    ],
)
def test_rejects_wrong_counts(wrong, named, capsys):
    assert checks.check_flash_io_count(wrong) is False
    out = capsys.readouterr().out
    assert named in out
    assert "✗ flash_io_count failed a check" in out


def test_reports_a_stub_and_refuses_a_non_function(capsys):
    def stub(n, d, block_q, block_k, order):
        raise NotImplementedError

    assert checks.check_flash_io_count(stub) is False
    assert "not implemented yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="fn must be a function"):
        checks.check_flash_io_count(42)
