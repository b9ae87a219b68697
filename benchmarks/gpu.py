"""Time the Triton FlashAttention kernels on a CUDA GPU against PyTorch's SDPA.

    make bench-gpu                                # the same as the next line
    python -m benchmarks.gpu                      # N = 1024 ... 8192, causal and not, float16
    python -m benchmarks.gpu --dtype float32 --n 1024 2048 --repeats 5
    python -m benchmarks.gpu --cpu-smoke          # no GPU: the same, tiny, in Triton's interpreter

At B = 1, H = 8, d = 64 and each N, three implementations run side by side through
:func:`attention_book.bench.compare` (warm-up, then interleaved repeats, medians; it waits for
the GPU around every call): the Triton kernels of
:func:`attention_book.efficient.triton_flash_attention`, the book's tiled PyTorch
:func:`attention_book.efficient.flash_attention` (forward only: it is a loop of PyTorch calls,
each a separate kernel launch) and PyTorch's ``scaled_dot_product_attention``, which on a GPU
runs FlashAttention-2's CUDA kernels. Forward and forward + backward are timed separately.
Before timing, the Triton output and gradients are checked against SDPA; a mismatch beyond the
dtype's tolerance stops the run with exit code 1.

The ratios to SDPA (above 1: slower) and the throughput (counting ``4 N^2 d`` flops per head
forward, half with ``causal``, and 2.5 times that backward) go to
``benchmarks/results/gpu.json``. Without a CUDA GPU the command says so and exits with 0;
``--cpu-smoke`` then runs the whole script at N = 64 and 100 in Triton's interpreter (its
timings mean nothing) and writes ``smoke.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TOLERANCE = {"float16": 2e-2, "bfloat16": 5e-2, "float32": 1e-4}  # relative to the largest value


def _relative_error(got, want):
    got, want = got.detach().float(), want.detach().float()
    return float((got - want).abs().max() / want.abs().max())


def check(q, k, v, causal):
    """Largest relative errors of the Triton output and gradients against SDPA."""
    import torch
    import torch.nn.functional as F

    from attention_book.efficient import triton_flash_attention

    inputs = [x.detach().requires_grad_() for x in (q, k, v)]
    out = triton_flash_attention(*inputs, causal=causal)
    grad = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, grad)
    ref = F.scaled_dot_product_attention(*inputs, is_causal=causal)
    expected = torch.autograd.grad(ref, inputs, grad)
    errors = {"out": _relative_error(out, ref)}
    for name, got, want in zip("qkv", grads, expected, strict=True):
        errors[f"d{name}"] = _relative_error(got, want)
    return errors


def measure(n, causal, heads, dim, dtype, repeats, device="cuda"):
    """One row: errors, median milliseconds and their ratios at one N."""
    import torch
    import torch.nn.functional as F

    from attention_book import bench, efficient

    g = torch.Generator(device=device).manual_seed(n)
    q, k, v = (
        torch.randn(1, heads, n, dim, device=device, dtype=dtype, generator=g) for _ in range(3)
    )
    errors = check(q, k, v, causal)

    def triton_fn():
        return efficient.triton_flash_attention(q, k, v, causal=causal)

    def sdpa_fn():
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    def tiled_fn():
        return efficient.flash_attention(q, k, v, causal=causal)

    with torch.no_grad():
        forward = bench.compare(
            {"triton": triton_fn, "sdpa": sdpa_fn, "pytorch_tiled": tiled_fn},
            repeats=repeats,
            warmup=2,
        )
    qg, kg, vg = (x.detach().requires_grad_() for x in (q, k, v))
    grad = torch.randn_like(q)

    def backward_of(fn):
        def run():
            out = fn(qg, kg, vg, causal=causal)
            torch.autograd.grad(out, (qg, kg, vg), grad)

        return run

    def sdpa(q, k, v, causal):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    both = bench.compare(
        {"triton": backward_of(efficient.triton_flash_attention), "sdpa": backward_of(sdpa)},
        repeats=repeats,
        warmup=2,
    )
    flops = 4 * n * n * dim * heads / (2 if causal else 1)
    ms = {f"forward {name}": t.median * 1e3 for name, t in forward.items()}
    ms.update({f"forward+backward {name}": t.median * 1e3 for name, t in both.items()})
    return {
        "n": n,
        "causal": causal,
        "max_relative_error": errors,
        "ms": ms,
        "ratios": {
            "forward triton / sdpa": forward["triton"].ratio(forward["sdpa"]),
            "forward pytorch_tiled / sdpa": forward["pytorch_tiled"].ratio(forward["sdpa"]),
            "forward pytorch_tiled / triton": forward["pytorch_tiled"].ratio(forward["triton"]),
            "forward+backward triton / sdpa": both["triton"].ratio(both["sdpa"]),
        },
        "tflops": {
            "forward triton": flops / forward["triton"].median / 1e12,
            "forward sdpa": flops / forward["sdpa"].median / 1e12,
            "forward+backward triton": 3.5 * flops / both["triton"].median / 1e12,
            "forward+backward sdpa": 3.5 * flops / both["sdpa"].median / 1e12,
        },
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--dtype", choices=sorted(TOLERANCE), default="float16")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny check in the interpreter")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for gpu.json")
    args = parser.parse_args(argv)
    if args.cpu_smoke:  # Triton picks its interpreter when it is imported: before that
        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
            print("triton was imported already; run: TRITON_INTERPRET=1 python -m benchmarks.gpu")
            return 1
        os.environ["TRITON_INTERPRET"] = "1"
    import torch

    from attention_book.efficient import triton_available

    if not triton_available():
        print('benchmarks.gpu needs Triton: pip install "attention-book[triton]" (Linux)')
        return 1
    if args.cpu_smoke:  # the whole run, tiny, in the interpreter: checks the code, times nothing
        args.n, args.heads, args.dim, args.dtype, args.repeats = [64, 100], 2, 32, "float32", 1
        device, machine, name = "cpu", f"{platform.machine()} CPU, Triton's interpreter", "smoke"
    elif torch.cuda.is_available():
        device, machine, name = "cuda", torch.cuda.get_device_name(), "gpu"
    else:
        print("benchmarks.gpu needs a CUDA GPU, and this machine has none: nothing to time.")
        print("python -m benchmarks.gpu --cpu-smoke checks the kernels in Triton's interpreter.")
        return 0
    import triton

    dtype = getattr(torch, args.dtype)
    print(f"{machine}: B=1, H={args.heads}, d={args.dim}, {args.dtype}")
    rows = []
    for causal in (False, True):
        for n in args.n:
            row = measure(n, causal, args.heads, args.dim, dtype, args.repeats, device)
            rows.append(row)
            ratios = "  ".join(f"{key} {value:.2f}" for key, value in row["ratios"].items())
            print(f"N={n:5d} causal={causal!s:5}  {ratios}")
            worst = max(row["max_relative_error"].values())
            if worst > TOLERANCE[args.dtype]:
                print(f"  WRONG: relative error {worst:.2g} > {TOLERANCE[args.dtype]:.0g}")
                return 1
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{name}.json"
    content = {
        "benchmark": "Triton FlashAttention against SDPA on a GPU",
        "machine": machine,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "shape": {"B": 1, "H": args.heads, "d": args.dim, "dtype": args.dtype},
        "repeats": args.repeats,
        "rows": rows,
    }
    path.write_text(json.dumps(content, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
