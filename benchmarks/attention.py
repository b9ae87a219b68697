"""Time the book's scaled dot-product attention against PyTorch's, side by side.

    python -m benchmarks.attention            # N = 256 ... 2048, writes benchmarks/results/
    python -m benchmarks.attention --n 512 4096 --repeats 20

The two are timed alternately in one process, so that both see the same machine state, and
the report is the ratio of their median times (above 1: the book's code is slower). The
book's version materialises the N x N weights, which it returns for inspection; PyTorch's
fused kernel does not, so a ratio above 1 is expected and grows with N.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from attention_book import seed_everything
from attention_book.attention import scaled_dot_product_attention

RESULTS = Path(__file__).resolve().parent / "results"


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(ns: list[int], heads: int, dim: int, repeats: int) -> list[dict[str, float]]:
    seed_everything(0)
    rows = []
    for n in ns:
        q, k, v = (torch.randn(1, heads, n, dim) for _ in range(3))
        ours = functools.partial(scaled_dot_product_attention, q, k, v)
        torch_sdpa = functools.partial(F.scaled_dot_product_attention, q, k, v)
        torch.testing.assert_close(ours()[0], torch_sdpa(), atol=1e-5, rtol=1e-4)
        ours(), torch_sdpa()  # warm up
        t_ours, t_torch = [], []
        for _ in range(repeats):  # alternate, so drift affects both alike
            t_ours.append(seconds(ours))
            t_torch.append(seconds(torch_sdpa))
        row = {
            "N": n,
            "ours_ms": 1e3 * statistics.median(t_ours),
            "torch_ms": 1e3 * statistics.median(t_torch),
        }
        row["ratio"] = row["ours_ms"] / row["torch_ms"]
        rows.append(row)
        print(
            f"N={n:6d}  ours {row['ours_ms']:8.2f} ms  torch {row['torch_ms']:8.2f} ms  "
            f"ratio {row['ratio']:5.2f}"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"B=1, H={args.heads}, d={args.dim}, fp32, {torch.get_num_threads()} threads")
    rows = run(args.n, args.heads, args.dim, args.repeats)
    RESULTS.mkdir(exist_ok=True)
    report = {
        "benchmark": "scaled_dot_product_attention vs torch SDPA",
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rows": rows,
    }
    out = RESULTS / "attention.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    main()
