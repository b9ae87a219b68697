"""Top-k block attention against dense causal SDPA: time, peak memory and error against N.

    python -m benchmarks.selection            # N = 4096, 8192, 16384 (~1 min on one thread)
    python -m benchmarks.selection --quick    # N = 512, 1024: a smoke test

One head group of the shape below, random float32 inputs, one thread. For each N it times
:func:`attention_book.modern.topk_block_attention` (blocks of 64, the best 8 blocks per query
block, a window of 64) and ``F.scaled_dot_product_attention(..., is_causal=True)`` side by side
with ``attention_book.bench.compare``, measures the peak memory of each, and (for N <= 4096,
where the dense mask fits) the largest difference from dense SDPA under the equivalent mask
(:func:`attention_book.modern.topk_block_mask`). The results go to
``benchmarks/results/selection.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from attention_book import bench, modern

from ._report import finish

RESULTS = Path(__file__).resolve().parent / "results"
HEADS, KV_HEADS, DIM = 2, 1, 64
BLOCK, TOP_K, WINDOW = 64, 8, 64
MASK_LIMIT = 4096  # the dense (B, H, N, N) mask of a larger N is too big to check


def inputs(n):
    gen = torch.Generator().manual_seed(n)
    q = torch.randn(1, HEADS, n, DIM, generator=gen)
    k = torch.randn(1, KV_HEADS, n, DIM, generator=gen)
    v = torch.randn(1, KV_HEADS, n, DIM, generator=gen)
    return q, k, v


def run(sizes, repeats):
    rows = []
    for n in sizes:
        q, k, v = inputs(n)
        group = HEADS // KV_HEADS
        kr, vr = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
        fns = {
            "topk": lambda q=q, k=k, v=v: modern.topk_block_attention(
                q, k, v, BLOCK, TOP_K, WINDOW
            ),
            "dense": lambda q=q, kr=kr, vr=vr: F.scaled_dot_product_attention(
                q, kr, vr, is_causal=True
            ),
        }
        with bench.num_threads(1):
            timing = bench.compare(fns, repeats=repeats)
            memory = {name: bench.peak_memory(fn) for name, fn in fns.items()}
        error = None
        if n <= MASK_LIMIT:
            mask = modern.topk_block_mask(q, k, BLOCK, TOP_K, WINDOW)
            want = F.scaled_dot_product_attention(q, kr, vr, attn_mask=mask)
            error = (fns["topk"]() - want).abs().max().item()
        keys_read = TOP_K * BLOCK + WINDOW + 1  # at most, per query
        row = {
            "n": n,
            "topk_ms": 1e3 * timing["topk"].median,
            "dense_ms": 1e3 * timing["dense"].median,
            "dense_over_topk": timing["dense"].median / timing["topk"].median,
            "topk_peak_mib": memory["topk"] / 2**20,
            "dense_peak_mib": memory["dense"] / 2**20,
            "max_error_vs_masked_dense": error,
            "keys_read_per_query_at_most": keys_read,
        }
        rows.append(row)
        shown = "n/a" if error is None else f"{error:.1e}"
        print(
            f"N={n:6d} topk {row['topk_ms']:8.1f} ms, dense {row['dense_ms']:8.1f} ms "
            f"(dense/topk {row['dense_over_topk']:.2f}), peak {row['topk_peak_mib']:.0f} vs "
            f"{row['dense_peak_mib']:.0f} MiB, error {shown}",
            flush=True,
        )
    return rows


def targets(rows):
    """What must hold in every run: exact under the mask, and gaining on dense as N grows."""
    report = {
        f"N={row['n']}: within 1e-4 of dense SDPA under the mask": row["max_error_vs_masked_dense"]
        < 1e-4
        for row in rows
        if row["max_error_vs_masked_dense"] is not None
    }
    first, last = rows[0], rows[-1]
    report["dense/topk grows from the smallest to the largest N"] = (
        last["dense_over_topk"] > first["dense_over_topk"]
    )
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 512, 1024: a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args(argv)
    sizes = [512, 1024] if args.quick else [4096, 8192, 16384]
    repeats = 2 if args.quick else 3
    print(f"{HEADS} heads, {KV_HEADS} key/value head, d={DIM}, blocks of {BLOCK}, top {TOP_K}")
    rows = run(sizes, repeats)
    report = targets(rows)
    return finish(
        args.out,
        "selection",
        "top-k block attention against dense causal SDPA",
        rows,
        report,
        quick=args.quick,
        threads=1,
        block_size=BLOCK,
        top_k=TOP_K,
        window=WINDOW,
    )


if __name__ == "__main__":
    raise SystemExit(main())
