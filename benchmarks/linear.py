"""Time, memory and error of the three forms of gated linear attention and the delta rule.

    python -m benchmarks.linear              # N = 256 ... 4096 (~1 min on 2 cores)
    python -m benchmarks.linear --quick      # N = 64, 128, 256: a smoke test

For each N, one sequence of 4 heads of size 64 in float32 (unit-norm keys, decays in
``[0.9, 1)``, betas in ``[0, 1]``, seeded) runs through
:func:`attention_book.modern.gated_linear_attention` and
:func:`attention_book.modern.delta_rule_attention` (with a decay: Gated DeltaNet) in three forms:
``recurrent`` (``chunk_size=None``, token by token), ``parallel`` (``chunk_size=N``, one masked
attention) and ``chunked`` (``chunk_size=64``). It reports each form's median time
(:func:`attention_book.bench.compare`, interleaved repeats, one thread), its peak memory
(:func:`attention_book.bench.peak_memory`) and its largest error against the recurrent form in
float64. Results go to ``benchmarks/results/linear.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.nn import functional as F

from attention_book import bench, make_generator, modern

from ._report import finish

RESULTS = Path(__file__).resolve().parent / "results"
HEADS, D, CHUNK = 4, 64, 64
SIZES, QUICK = (256, 512, 1024, 2048, 4096), (64, 128, 256)
FUNCTIONS = ("gated linear", "delta rule")
FORMS = ("recurrent", "parallel", "chunked")


def inputs(n, dtype=torch.float32):
    """Seeded queries, unit keys, values, log decays and betas for one sequence of n."""
    gen = make_generator(n)
    q = torch.randn(1, HEADS, n, D, generator=gen) / D**0.5
    k = F.normalize(torch.randn(1, HEADS, n, D, generator=gen), dim=-1)
    v = torch.randn(1, HEADS, n, D, generator=gen)
    log_decay = torch.log(0.9 + 0.1 * torch.rand(1, HEADS, n, generator=gen))
    beta = torch.rand(1, HEADS, n, generator=gen)
    return [x.to(dtype) for x in (q, k, v, log_decay, beta)]


def call(function, form, tensors):
    """The output of one function in one form."""
    q, k, v, log_decay, beta = tensors
    chunk = {"recurrent": None, "parallel": q.shape[-2], "chunked": CHUNK}[form]
    if function == "gated linear":
        return modern.gated_linear_attention(q, k, v, log_decay, chunk)
    return modern.delta_rule_attention(q, k, v, beta, chunk, log_decay=log_decay)


def run(sizes, repeats):
    rows = []
    with bench.num_threads(1):
        for n in sizes:
            tensors = inputs(n)
            exact = inputs(n, torch.float64)
            for function in FUNCTIONS:
                reference = call(function, "recurrent", exact)
                fns = {
                    form: (lambda f=function, form=form, x=tensors: call(f, form, x))
                    for form in FORMS
                }
                timing = bench.compare(fns, repeats=repeats)
                for form, fn in fns.items():
                    error = (fn().double() - reference).abs().max().item()
                    row = {
                        "function": function,
                        "form": form,
                        "n": n,
                        "ms": 1e3 * timing[form].median,
                        "peak_mib": bench.peak_memory(fn) / 2**20,
                        "max_error": error,
                    }
                    rows.append(row)
                    print(
                        f"{function:12s} {form:9s} N={n:5d}: {row['ms']:9.1f} ms, "
                        f"peak {row['peak_mib']:8.1f} MiB, error {error:.1e}",
                        flush=True,
                    )
    return rows


def targets(rows):
    """What must hold in every run: all forms accurate; chunked beats recurrent at the top."""
    report = {}
    n_max = max(row["n"] for row in rows)
    n_min = min(row["n"] for row in rows)
    for function in FUNCTIONS:
        by = {(r["form"], r["n"]): r for r in rows if r["function"] == function}
        report[f"{function}: every form within 1e-3 of the float64 recurrence"] = all(
            r["max_error"] < 1e-3 for r in by.values()
        )
        report[f"{function}: chunked at least 2x faster than recurrent at N={n_max}"] = (
            by[("recurrent", n_max)]["ms"] > 2 * by[("chunked", n_max)]["ms"]
        )
        growth = by[("recurrent", n_max)]["ms"] / by[("recurrent", n_min)]["ms"]
        report[f"{function}: recurrent time grows no faster than N^1.5"] = (
            growth < (n_max / n_min) ** 1.5
        )
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 64, 128, 256: a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else SIZES
    print(f"{HEADS} heads of {D}, chunks of {CHUNK}, float32, one thread, N = {list(sizes)}")
    rows = run(sizes, repeats=2 if args.quick else 3)
    report = targets(rows)
    return finish(
        args.out,
        "linear",
        "three forms of gated linear attention and the delta rule",
        rows,
        report,
        quick=args.quick,
        width=62,
        heads=HEADS,
        head_dim=D,
        chunk_size=CHUNK,
    )


if __name__ == "__main__":
    raise SystemExit(main())
