"""Time, peak memory and error of every attention implementation of chapter 6, against N.

    python -m benchmarks.efficient                      # N = 256 ... 8192 (a few minutes)
    python -m benchmarks.efficient --n 1024 4096 --repeats 5
    python -m benchmarks.efficient --quick              # N = 256, 512: a smoke test

B = 1, H = 8, d = 64, float32, on the CPU with PyTorch's default number of threads. For each
N all implementations are timed in turns in one process (``attention_book.bench.compare``), so
that a busy moment of the machine slows them alike; the reported numbers are medians and
ratios of medians. Peak memory is measured once per implementation and N, separately from the
timing. The results go to ``benchmarks/results/efficient.json`` and ``efficient.png``, and the
chapter's targets are printed at the end:

- flash_attention <= 1.3x PyTorch's SDPA at N = 4096 (non-causal), <= 1.5x causal;
- its peak extra memory at N = 8192 <= 1/10 of naive attention's;
- sliding-window attention (window 256) faster than dense SDPA from N = 4096 up;
- the N from which linear attention is faster than SDPA (the crossover).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from pathlib import Path

import torch
import torch.nn.functional as F

from attention_book import seed_everything
from attention_book.bench import compare, peak_memory
from attention_book.efficient import flash_attention, linear_attention, sliding_window_attention

RESULTS = Path(__file__).resolve().parent / "results"
WINDOW = 256
BLOCK = (256, 1024)


def naive(q, k, v, causal=False):
    """Attention as written in the textbook: the whole N x N matrix of weights."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        n = q.shape[-2]
        scores = scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), -math.inf)
    return torch.softmax(scores, dim=-1) @ v


def implementations(q, k, v, with_naive):
    """Name -> zero-argument function, for one set of inputs."""
    fns = {
        "sdpa": lambda: F.scaled_dot_product_attention(q, k, v),
        "sdpa_causal": lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "flash": lambda: flash_attention(q, k, v, block_size=BLOCK),
        "flash_causal": lambda: flash_attention(q, k, v, causal=True, block_size=BLOCK),
        "window": lambda: sliding_window_attention(q, k, v, WINDOW, causal=True),
        "linear": lambda: linear_attention(q, k, v),
        "linear_causal": lambda: linear_attention(q, k, v, causal=True),
    }
    if with_naive:
        fns["naive"] = lambda: naive(q, k, v)
    return fns


def errors(q, k, v, n):
    """Max abs difference from PyTorch's SDPA with the matching mask."""
    exact = F.scaled_dot_product_attention(q, k, v)
    exact_causal = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    exact_window = F.scaled_dot_product_attention(q, k, v, attn_mask=(j <= i) & (i - j < WINDOW))

    def gap(out, ref):
        return (out - ref).abs().max().item()

    return {
        "flash": gap(flash_attention(q, k, v, block_size=BLOCK), exact),
        "flash_causal": gap(flash_attention(q, k, v, causal=True, block_size=BLOCK), exact_causal),
        "window": gap(sliding_window_attention(q, k, v, WINDOW), exact_window),
        "linear": gap(linear_attention(q, k, v), exact),  # an approximation: not exact
        "linear_causal": gap(linear_attention(q, k, v, causal=True), exact_causal),
    }


def run(ns, heads, dim, repeats, max_naive):
    seed_everything(0)
    rows = []
    for n in ns:
        q, k, v = (torch.randn(1, heads, n, dim) for _ in range(3))
        fns = implementations(q, k, v, with_naive=n <= max_naive)
        timings = compare(fns, repeats=repeats, warmup=1)
        memory = {name: peak_memory(fn) for name, fn in fns.items()}
        row = {
            "N": n,
            "ms": {name: 1e3 * t.median for name, t in timings.items()},
            "best_ms": {name: 1e3 * t.best for name, t in timings.items()},
            "peak_mib": {name: b / 2**20 for name, b in memory.items()},
            "max_abs_error": errors(q, k, v, n) if n <= 8192 else {},
        }
        rows.append(row)
        shown = "  ".join(f"{name} {ms:.1f}" for name, ms in row["ms"].items())
        print(f"N={n:6d}  ms: {shown}", flush=True)
    return rows


def targets(rows, key="ms"):
    """The chapter's targets, from the rows of one run: ratios of medians (or of best times)."""
    by_n = {row["N"]: {**row, "ms": row[key]} for row in rows}
    report = {}
    if 4096 in by_n:
        ms = by_n[4096]["ms"]
        report["flash / sdpa at N=4096"] = ms["flash"] / ms["sdpa"]
        report["flash causal / sdpa causal at N=4096"] = ms["flash_causal"] / ms["sdpa_causal"]
    if 8192 in by_n and "naive" in by_n[8192]["peak_mib"]:
        mib = by_n[8192]["peak_mib"]
        report["flash peak memory / naive at N=8192"] = mib["flash"] / mib["naive"]
    for n, row in sorted(by_n.items()):
        if n >= 4096:
            report[f"window {WINDOW} / sdpa at N={n}"] = row["ms"]["window"] / row["ms"]["sdpa"]
            report[f"window {WINDOW} / sdpa causal at N={n}"] = (
                row["ms"]["window"] / row["ms"]["sdpa_causal"]
            )
    for kind, base in (("linear", "sdpa"), ("linear_causal", "sdpa_causal")):
        faster = [n for n, row in sorted(by_n.items()) if row["ms"][kind] < row["ms"][base]]
        report[f"{kind} faster than {base} from N"] = faster[0] if faster else None
    worst = [row["max_abs_error"].get(name, 0.0) for row in rows for name in ("flash", "window")]
    report["max abs error of flash and window"] = max(worst, default=None)
    return report


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attention_book import plots

    plots.use_style()
    ns = [row["N"] for row in rows]
    names = list(rows[0]["ms"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    for name in names:
        pts = [(row["N"], row["ms"][name]) for row in rows if name in row["ms"]]
        axes[0].plot(*zip(*pts, strict=True), marker="o", label=name)
        pts = [(row["N"], row["peak_mib"][name]) for row in rows if name in row["peak_mib"]]
        axes[1].plot(*zip(*pts, strict=True), marker="o", label=name)
    for name in rows[0]["max_abs_error"]:
        pts = [(row["N"], row["max_abs_error"][name]) for row in rows if row["max_abs_error"]]
        axes[2].plot(*zip(*pts, strict=True), marker="o", label=name)
    axes[0].set(ylabel="ms per call (median)", title="time")
    axes[1].set(ylabel="peak extra MiB", title="memory")
    axes[2].set(ylabel="max abs difference from SDPA", title="error")
    for ax in axes:
        ax.set(xscale="log", yscale="log", xlabel="sequence length N")
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.xaxis.set_minor_locator(plt.NullLocator())
    axes[0].legend(fontsize="small")
    axes[2].legend(fontsize="small")
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-naive", type=int, default=8192, help="largest N for naive")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="N = 256, 512 only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for JSON and PNG")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ns = [256, 512] if args.quick else args.n
    print(f"B=1, H={args.heads}, d={args.dim}, fp32, {torch.get_num_threads()} threads")
    rows = run(ns, args.heads, args.dim, args.repeats, args.max_naive)
    report, best = targets(rows), targets(rows, key="best_ms")
    print("\ntargets, measured side by side in this run: ratio of medians (ratio of best times)")
    for key, value in report.items():
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        other = f"{best[key]:.3g}" if isinstance(best[key], float) else str(best[key])
        print(f"  {key:45s} {shown:>8} ({other})")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "efficient attention against N",
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "shape": {"B": 1, "H": args.heads, "d": args.dim, "dtype": "float32"},
        "window": WINDOW,
        "block_size": list(BLOCK),
        "rows": rows,
        "targets": report,
        "targets_best_times": best,
    }
    (args.out / "efficient.json").write_text(json.dumps(result, indent=2))
    plot(rows, args.out / "efficient.png")
    print(f"wrote {args.out / 'efficient.json'} and {args.out / 'efficient.png'}")


if __name__ == "__main__":
    main()
