"""Time, peak memory and error of every attention implementation of chapter 6, against N.

    make bench                                          # the same as the next line
    python -m benchmarks.efficient                      # N = 256 ... 8192 (a few minutes)
    python -m benchmarks.efficient --n 1024 4096 --repeats 5
    python -m benchmarks.efficient --quick              # N = 256, 512: a smoke test

A thin command line around :func:`attention_book.bench.sweep`, which the page "Benchmark your
machine" runs on a smaller range: every implementation in
:data:`attention_book.bench.IMPLEMENTATIONS` (add yours there), B = 1, H = 8, d = 64, float32,
on the CPU with PyTorch's default number of threads. For each N the implementations are timed
in turns in one process, so that a busy moment of the machine slows them alike; the reported
times are medians (and fastest calls), and the targets below are ratios measured side by side.
Peak memory is measured once per implementation and N, separately from the timing, and the
error against PyTorch's SDPA in float64 with the matching mask. The results go to
``benchmarks/results/efficient.json`` and ``efficient.png`` (time, memory and error against N),
and the chapter's targets are printed at the end:

- flash <= 1.3x PyTorch's SDPA at N = 4096 (non-causal), <= 1.5x causal;
- its peak extra memory at N = 8192 <= 1/10 of naive attention's;
- sliding-window attention (window 256) faster than dense SDPA from N = 4096 up;
- the N from which linear attention is faster than SDPA (the crossover).
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from attention_book import bench, plots

RESULTS = Path(__file__).resolve().parent / "results"


def targets(rows, key="ms"):
    """The chapter's targets, from the rows of one run: ratios of medians (or of best times)."""
    by_n = {row.n: getattr(row, key) for row in rows}
    memory = {row.n: row.peak_mib for row in rows}
    report = {}
    if 4096 in by_n:
        ms = by_n[4096]
        report["flash / sdpa at N=4096"] = ms["flash"] / ms["sdpa"]
        report["flash causal / sdpa causal at N=4096"] = ms["flash_causal"] / ms["sdpa_causal"]
    if 8192 in memory and "naive" in memory[8192]:
        report["flash peak memory / naive at N=8192"] = (
            memory[8192]["flash"] / memory[8192]["naive"]
        )
    for n, ms in sorted(by_n.items()):
        if n >= 4096:
            report[f"window 256 / sdpa at N={n}"] = ms["window"] / ms["sdpa"]
            report[f"window 256 / sdpa causal at N={n}"] = ms["window"] / ms["sdpa_causal"]
    for name, base in (("linear", "sdpa"), ("linear_causal", "sdpa_causal")):
        report[f"{name} faster than {base} from N"] = bench.crossover(rows, name, base, key)
    exact = [row.max_abs_error[name] for row in rows for name in ("flash", "window")]
    report["max abs error of flash and window"] = max(exact, default=None)
    return report


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
    shape = f"B=1, H={args.heads}, d={args.dim}, fp32, {torch.get_num_threads()} threads"
    print(shape)
    rows = bench.sweep(
        sizes=ns,
        heads=args.heads,
        dim=args.dim,
        repeats=args.repeats,
        max_n={"naive": args.max_naive},
        verbose=True,
    )
    print(
        f"\n{bench.format_sweep(rows, 'peak_mib')}\n\n{bench.format_sweep(rows, 'max_abs_error')}"
    )
    report, best = targets(rows), targets(rows, key="best_ms")
    print("\ntargets, measured side by side in this run: ratio of medians (ratio of best times)")
    for key, value in report.items():
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        other = f"{best[key]:.3g}" if isinstance(best[key], float) else str(best[key])
        print(f"  {key:45s} {shown:>8} ({other})")
    args.out.mkdir(parents=True, exist_ok=True)
    machine = platform.processor() or platform.machine()
    bench.save_sweep(
        rows,
        args.out / "efficient.json",
        benchmark="efficient attention against N",
        machine=machine,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        shape={"B": 1, "H": args.heads, "d": args.dim, "dtype": "float32"},
        implementations=list(bench.IMPLEMENTATIONS),
        targets=report,
        targets_best_times=best,
    )
    plots.use_style()
    fig = bench.plot_sweep(rows, title=f"{machine}: {shape}")
    fig.savefig(args.out / "efficient.png", dpi=90)
    print(f"wrote {args.out / 'efficient.json'} and {args.out / 'efficient.png'}")


if __name__ == "__main__":
    import matplotlib

    matplotlib.use("Agg")  # no window: the figure goes to a file
    main()
