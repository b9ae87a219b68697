"""``checks.ch7_paged``: the checker accepts the reference and rejects plausible wrong answers."""

import pytest
import torch

from attention_book import checks, modern


def gather_blocks(pool, block_table, length):
    return pool[block_table].flatten(0, 1)[:length].transpose(0, 1)


def gather_by_slots(pool, block_table, length):  # the slot arithmetic, position by position
    size = pool.shape[1]
    slots = [block_table[i // size] * size + i % size for i in range(length)]
    return pool.flatten(0, 1)[slots].transpose(0, 1)


def gather_with_the_package(pool, block_table, length):
    num_blocks, size, heads, d = pool.shape
    cache = modern.PagedKVCache(num_blocks, size, heads, d, dtype=pool.dtype)
    cache.new_sequence(0)
    cache.keys.copy_(pool)
    cache._tables[0], cache._lengths[0] = list(block_table), length
    return cache.gather(0)[0]


def test_check_gather_blocks_accepts_the_reference(capsys):
    for right in (gather_blocks, gather_by_slots, gather_with_the_package):
        assert checks.check_gather_blocks(right) is True
        assert "passes all 5 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        # ignores length: returns every slot of the last block, filled or not
        (lambda p, t, n: p[t].flatten(0, 1).transpose(0, 1), "the last block partly filled"),
        # off by one at the end
        (lambda p, t, n: gather_blocks(p, t, n - 1), "one full block"),
        # drops the partly filled last block
        (
            lambda p, t, n: gather_blocks(p, t, n // p.shape[1] * p.shape[1]),
            "the last block partly filled",
        ),
        # blocks in the pool's order, not the table's
        (lambda p, t, n: gather_blocks(p, sorted(t), n), "read in the table's order"),
        (lambda p, t, n: gather_blocks(p, t[::-1], n), "read in the table's order"),
        # block numbers used as slot numbers
        (lambda p, t, n: p.flatten(0, 1)[t][:n].transpose(0, 1), "one full block"),
        # the first blocks of the pool, whatever the table says
        (lambda p, t, n: gather_blocks(p, list(range(len(t))), n), "one full block"),
        # forgets to put the heads first
        (lambda p, t, n: p[t].flatten(0, 1)[:n], "one full block"),
        # offsets taken modulo the number of blocks instead of the block size
        (
            lambda p, t, n: torch.stack([p[t[i // p.shape[1]], i % len(t)] for i in range(n)], 1),
            "one full block",
        ),
        # head 0 for every head
        (lambda p, t, n: gather_blocks(p, t, n)[:1].expand(p.shape[2], -1, -1), "three heads"),
    ],
)
def test_check_gather_blocks_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_gather_blocks(wrong) is False
    assert named_property in capsys.readouterr().out


def test_check_gather_blocks_reports_unfinished_and_bad_input(capsys):
    def stub(pool, block_table, length):
        raise NotImplementedError

    assert checks.check_gather_blocks(stub) is False
    assert "not implemented yet" in capsys.readouterr().out
    with pytest.raises(TypeError, match="must be a function"):
        checks.check_gather_blocks(3)
