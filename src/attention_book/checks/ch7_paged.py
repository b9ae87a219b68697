"""Checkers for chapter 7's paged KV cache (7.2): gathering a sequence's blocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._harness import _array, _call, _close, _expect, _require_callable, _run

__all__ = ["check_gather_blocks"]


def _numbered(num_blocks: int, block_size: int, heads: int, d: int) -> torch.Tensor:
    """A pool whose entries read 100 * block + 10 * offset + head + feature / 10."""
    return (
        100 * torch.arange(num_blocks)[:, None, None, None]
        + 10 * torch.arange(block_size)[None, :, None, None]
        + torch.arange(heads)[None, None, :, None]
        + torch.arange(d)[None, None, None, :] / 10
    ).to(torch.float64)


def _reference_gather_blocks(pool: torch.Tensor, block_table: list[int], length: int) -> Any:
    return pool[block_table].flatten(0, 1)[:length].transpose(0, 1)  # (H, length, d)


def check_gather_blocks(fn: Callable[..., Any]) -> bool:
    """Check ``fn(pool, block_table, length)``: a sequence's keys, gathered from its blocks.

    ``pool`` is ``(num_blocks, block_size, H, d)``; the sequence's position ``i`` sits in block
    ``block_table[i // block_size]`` at offset ``i % block_size``. The function returns the
    sequence's ``length`` keys in position order, ``(H, length, d)``.

    Args:
        fn: takes a tensor ``pool``, a list of ints ``block_table`` and an int ``length``;
            returns a tensor.

    Returns:
        ``True`` when every check passes; the feedback is printed.

    Introduced in :ref:`sec-paged-cache`.
    """
    _require_callable("fn", fn)

    def matches(pool: torch.Tensor, table: list[int], length: int, prop: str) -> Callable[[], None]:
        def check() -> None:
            args = {"pool": pool.clone(), "block_table": list(table), "length": length}
            want = _reference_gather_blocks(pool, table, length)
            got = _array(_call(fn, args, prop), "the result", prop, args)
            if got.shape != tuple(want.shape):
                _expect(False, prop, args, f"shape {tuple(want.shape)}", f"shape {got.shape}")
            # entry 100 * block + 10 * offset + ...: name the blocks and offsets it read
            read = [(int(x) // 100, int(x) // 10 % 10) for x in got[0, :, 0].tolist()]
            wanted = [(int(x) // 100, int(x) // 10 % 10) for x in want[0, :, 0].tolist()]
            if read != wanted:
                _expect(False, prop, args, f"(block, offset) {wanted}", f"{read}")
            _expect(_close(got, want.numpy()), prop, args, want, got)

        return check

    return _run(
        "gather_blocks",
        [
            matches(_numbered(4, 3, 1, 2), [2], 3, "one full block: block 2, offsets 0 to 2"),
            matches(_numbered(5, 3, 1, 2), [3, 0, 4], 9, "three blocks, read in the table's order"),
            matches(_numbered(6, 4, 1, 2), [1, 5], 6, "the last block partly filled: 6 of 8 slots"),
            matches(_numbered(5, 2, 3, 2), [4, 1, 2], 5, "three heads: the result is (H, N, d)"),
            matches(_numbered(3, 4, 2, 3), [2], 1, "a single position"),
        ],
    )
