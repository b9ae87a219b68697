"""Time, peak memory and error of every attention implementation of chapter 6, against N.

    make bench                                          # the same as the next line
    python -m benchmarks.efficient                      # N = 256 ... 8192, then the backward
    python -m benchmarks.efficient --n 1024 4096 --repeats 5
    python -m benchmarks.efficient --quick              # N = 256, 512: a smoke test
    python -m benchmarks.efficient --backward           # the backward only (about 4 minutes)
    python -m benchmarks.efficient --backward --backward-n 1024 4096

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

Then the backward pass (:func:`backward`, alone with ``--backward``): FlashAttention's tiled
backward (:func:`attention_book.efficient.flash_attention` through autograd), SDPA's backward
and naive attention's autograd, at B = 1, H = 8, d = 64, non-causal. The backward alone is timed
in turns (each forward built once, its graph kept); peak extra memory is that of forward and
backward together; the error is the largest of ``dq``, ``dk`` and ``dv`` against SDPA's
gradients in float64. The results go to ``efficient_backward.json``, with two targets:

- flash backward <= 2.0x SDPA's backward at N = 4096;
- its peak extra memory of forward + backward at N = 8192 <= 1/10 of naive attention's.
"""

from __future__ import annotations

import argparse
import functools
import platform
from pathlib import Path

import torch
import torch.nn.functional as F

from attention_book import bench, plots
from attention_book.efficient import flash_attention

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


def _naive(q, k, v):
    """softmax(q k^T / sqrt(d)) v as written: autograd keeps the (N, N) weights."""
    return torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1) @ v


BACKWARD = {"flash": flash_attention, "sdpa": F.scaled_dot_product_attention, "naive": _naive}


def backward(sizes, heads=8, dim=64, repeats=3, max_naive=8192, seed=0):
    """Time, peak memory and gradient error of each backward pass in BACKWARD, against N.

    Returns one :class:`attention_book.bench.SweepRow` per size: ``ms`` and ``best_ms`` are the
    backward alone (median and fastest of ``repeats`` calls in turns, after one warm-up),
    ``peak_mib`` is forward + backward, ``max_abs_error`` the largest gradient error.
    """
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for n in sizes:
        q, k, v, grad_out = (torch.randn(1, heads, n, dim, generator=generator) for _ in range(4))
        fns = {name: fn for name, fn in BACKWARD.items() if name != "naive" or n <= max_naive}
        rows.append(_backward_row(n, fns, (q, k, v), grad_out, repeats))
        shown = "  ".join(f"{name} {ms:.1f}" for name, ms in rows[-1].ms.items())
        print(f"N={n:6d}  backward ms: {shown}", flush=True)
    return rows


def _backward_row(n, fns, inputs, grad_out, repeats):
    """One size of :func:`backward`: every function's backward on the same inputs."""
    inputs = [x.requires_grad_(True) for x in inputs]
    outs = {name: fn(*inputs) for name, fn in fns.items()}  # each graph kept for every call

    def grads(name):
        return torch.autograd.grad(outs[name], inputs, grad_out, retain_graph=True)

    timings = bench.compare({name: functools.partial(grads, name) for name in fns}, repeats)
    got = {name: grads(name) for name in fns}
    outs.clear()  # free the graphs (naive's weights) before measuring memory

    def forward_backward(fn):
        return torch.autograd.grad(fn(*inputs), inputs, grad_out)

    memory = {
        name: bench.peak_memory(functools.partial(forward_backward, fn)) / 2**20
        for name, fn in fns.items()
    }
    exact = [x.detach().double().requires_grad_(True) for x in inputs]
    want = torch.autograd.grad(F.scaled_dot_product_attention(*exact), exact, grad_out.double())
    errors = {
        name: max((g.double() - w).abs().max().item() for g, w in zip(gs, want, strict=True))
        for name, gs in got.items()
    }
    return bench.SweepRow(
        n=n,
        ms={name: 1e3 * t.median for name, t in timings.items()},
        best_ms={name: 1e3 * t.best for name, t in timings.items()},
        peak_mib=memory,
        max_abs_error=errors,
    )


def backward_targets(rows, key="ms"):
    """The backward pass's targets, from the rows of one run: ratios of medians (or best)."""
    by_n = {row.n: getattr(row, key) for row in rows}
    memory = {row.n: row.peak_mib for row in rows}
    report = {}
    if 4096 in by_n:
        report["flash backward / sdpa backward at N=4096"] = (
            by_n[4096]["flash"] / by_n[4096]["sdpa"]
        )
        if "naive" in by_n[4096]:
            report["flash backward / naive backward at N=4096"] = (
                by_n[4096]["flash"] / by_n[4096]["naive"]
            )
    if 8192 in memory and "naive" in memory[8192]:
        for name in ("flash", "sdpa"):
            report[f"{name} fwd+bwd peak memory / naive at N=8192"] = (
                memory[8192][name] / memory[8192]["naive"]
            )
    report["max abs gradient error of flash"] = max(row.max_abs_error["flash"] for row in rows)
    return report


def _print_targets(report, best):
    print("\ntargets, measured side by side in this run: ratio of medians (ratio of best times)")
    for key, value in report.items():
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        other = f"{best[key]:.3g}" if isinstance(best[key], float) else str(best[key])
        print(f"  {key:45s} {shown:>8} ({other})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-naive", type=int, default=8192, help="largest N for naive")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="N = 256, 512 only")
    parser.add_argument("--backward", action="store_true", help="the backward comparison only")
    parser.add_argument(
        "--backward-n", type=int, nargs="+", default=[1024, 2048, 4096, 8192], help="its N"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for JSON and PNG")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ns = [256, 512] if args.quick else args.n
    shape = f"B=1, H={args.heads}, d={args.dim}, fp32, {torch.get_num_threads()} threads"
    print(shape)
    machine = platform.processor() or platform.machine()
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.backward:
        _forward_sweep(args, ns, shape, machine)
    ns = [256, 512] if args.quick else args.backward_n
    rows = backward(ns, args.heads, args.dim, args.repeats, args.max_naive)
    print(f"\n{bench.format_sweep(rows, 'ms')}\n\n{bench.format_sweep(rows, 'peak_mib')}")
    print(f"\n{bench.format_sweep(rows, 'max_abs_error')}")
    report, best = backward_targets(rows), backward_targets(rows, key="best_ms")
    _print_targets(report, best)
    bench.save_sweep(
        rows,
        args.out / "efficient_backward.json",
        benchmark="backward pass of attention against N (time: backward; memory: fwd + bwd)",
        machine=machine,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        shape={"B": 1, "H": args.heads, "d": args.dim, "dtype": "float32"},
        implementations=list(BACKWARD),
        targets=report,
        targets_best_times=best,
    )
    print(f"wrote {args.out / 'efficient_backward.json'}")


def _forward_sweep(args, ns, shape, machine):
    """The forward sweep of every implementation: JSON, PNG and the chapter's targets."""
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
    _print_targets(report, best)
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
