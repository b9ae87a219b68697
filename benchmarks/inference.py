"""Time greedy generation with and without the KV cache, for multi-head, grouped and multi-query.

    python -m benchmarks.inference                    # 256 new tokens, kv heads 8, 2, 1 (~2 min)
    python -m benchmarks.inference --tokens 512 --kv-heads 8 --repeats 5
    python -m benchmarks.inference --quick            # 64 new tokens, kv heads 8: a smoke test

A decoder (``attention_book.models.decoder.DecoderLM``: 4 layers, d_model 256, 8 query heads
of size 32, feed-forward 1024, vocabulary 256, seeded random weights: speed does not depend
on what the weights learned) extends a 16-token prompt greedily, on the CPU in float32 with
PyTorch's default number of threads. For each number of key/value heads, generating with the
cache and recomputing every step are timed in turns in one process
(``attention_book.bench.compare``), so that a busy moment of the machine slows both alike; the
report is the ratio of the medians. Both must produce the same tokens, and the cache's size
must equal the formula ``2 * layers * kv_heads * head_dim * length * 4`` bytes. The results go
to ``benchmarks/results/inference.json``, and the chapter's target is printed at the end:

- the KV cache generates 256 tokens >= 5x faster than recomputing, with the same tokens
  (multi-head attention, 8 key/value heads).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from attention_book import seed_everything
from attention_book.bench import compare
from attention_book.efficient import kv_cache_bytes
from attention_book.models.decoder import DecoderLM

RESULTS = Path(__file__).resolve().parent / "results"
SHAPE = {"vocab_size": 256, "d_model": 256, "num_heads": 8, "num_layers": 4, "d_ff": 1024}
PROMPT = 16
TARGET = 5.0


def model_with(kv_heads, max_len):
    """The benchmark's decoder with ``kv_heads`` key/value heads, seeded weights, eval mode."""
    seed_everything(0)
    return DecoderLM(**SHAPE, num_kv_heads=kv_heads, max_len=max_len).eval()


def measured_cache_bytes(model, ids):
    """Bytes the per-layer caches hold after a forward pass over ``ids``."""
    caches = model.new_caches(ids.shape[1])
    with torch.no_grad():
        model(ids, caches)
    return sum(cache.nbytes for cache in caches)


def run(kv_heads, tokens, repeats):
    rows = []
    prompt = torch.randint(
        3, SHAPE["vocab_size"], (1, PROMPT), generator=torch.Generator().manual_seed(1)
    )
    for kv in kv_heads:
        model = model_with(kv, PROMPT + tokens)
        cached = model.generate(prompt, tokens, use_cache=True)
        recomputed = model.generate(prompt, tokens, use_cache=False)
        timings = compare(
            {
                "cache": lambda m=model: m.generate(prompt, tokens, use_cache=True),
                "recompute": lambda m=model: m.generate(prompt, tokens, use_cache=False),
            },
            repeats=repeats,
            warmup=1,
        )
        predicted = kv_cache_bytes(model.num_layers, kv, model.head_dim, PROMPT + tokens)
        row = {
            "kv_heads": kv,
            "ms": {name: 1e3 * t.median for name, t in timings.items()},
            "best_ms": {name: 1e3 * t.best for name, t in timings.items()},
            "speedup": timings["recompute"].median / timings["cache"].median,
            "speedup_best": timings["recompute"].best / timings["cache"].best,
            "same_tokens": bool(torch.equal(cached, recomputed)),
            "cache_bytes_predicted": predicted,
            "cache_bytes_measured": measured_cache_bytes(model, cached),
            "cache_bytes_per_token": kv_cache_bytes(model.num_layers, kv, model.head_dim, 1),
        }
        rows.append(row)
        print(
            f"kv heads {kv}: cache {row['ms']['cache']:8.1f} ms, recompute "
            f"{row['ms']['recompute']:8.1f} ms, speedup {row['speedup']:5.2f}x, same tokens "
            f"{row['same_tokens']}, cache {row['cache_bytes_measured'] / 2**10:.0f} KiB "
            f"(formula {predicted / 2**10:.0f} KiB)",
            flush=True,
        )
    return rows


def targets(rows, tokens):
    """The chapter's target from the rows of one run, with the checks it depends on."""
    report = {}
    for row in rows:
        name = f"kv heads {row['kv_heads']}"
        report[f"{name}: cache speedup for {tokens} tokens (median)"] = row["speedup"]
        report[f"{name}: same tokens"] = row["same_tokens"]
        report[f"{name}: cache bytes == formula"] = (
            row["cache_bytes_measured"] == row["cache_bytes_predicted"]
        )
    mha = next((row for row in rows if row["kv_heads"] == SHAPE["num_heads"]), None)
    if mha is not None and tokens == 256:
        report[f"target: >= {TARGET:g}x with the same tokens (MHA, 256 tokens)"] = bool(
            mha["speedup"] >= TARGET and mha["same_tokens"]
        )
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256, help="new tokens to generate")
    parser.add_argument("--kv-heads", type=int, nargs="+", default=[8, 2, 1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="64 tokens, kv heads 8 only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tokens, kv_heads = (64, [8]) if args.quick else (args.tokens, args.kv_heads)
    print(
        f"DecoderLM {SHAPE}, prompt {PROMPT} tokens, {tokens} new tokens, fp32, "
        f"{torch.get_num_threads()} threads"
    )
    rows = run(kv_heads, tokens, args.repeats)
    report = targets(rows, tokens)
    print("\ntargets, measured side by side in this run (ratio of medians)")
    for key, value in report.items():
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        print(f"  {key:55s} {shown:>8}")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "greedy generation with and without the KV cache",
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": {**SHAPE, "dtype": "float32", "positions": "rope"},
        "prompt_tokens": PROMPT,
        "new_tokens": tokens,
        "rows": rows,
        "targets": report,
    }
    (args.out / "inference.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out / 'inference.json'}")


if __name__ == "__main__":
    main()
