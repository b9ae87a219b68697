"""Memory per token of chapter 7's caches, measured on the cache objects of one decoder.

    python -m benchmarks.caches              # 1000 tokens of a 2048-position reservation (~10 s)
    python -m benchmarks.caches --quick      # 200 tokens: a smoke test

One decoder shape (``attention_book.models.decoder.DecoderLM``: 4 layers, d_model 256, 8 query
heads of size 32, seeded random weights: a cache's size does not depend on what the weights
learned) processes the same sequence with each kind of cache:

- ``MHA``, ``GQA`` (2 key/value heads) and ``MQA`` (1): :class:`attention_book.efficient.KVCache`,
  which reserves ``max_len`` positions when it starts (section 6.7);
- ``MLA``: :class:`attention_book.modern.MultiHeadLatentAttention` with DeepSeek-V2's ratios,
  ``d_latent = 4 d_head`` and ``d_rope = d_head / 2``: a latent and a rotary key per position;
- ``paged``: :class:`attention_book.modern.PagedKVCache`, blocks of 16 taken as the sequence
  grows (multi-head keys and values);
- ``local:global``: :class:`attention_book.modern.WindowedAttention`, windows of 128 and one
  global layer in 4, local layers in a rolling buffer;
- ``sinks``: :class:`attention_book.modern.SinkCache`, 4 sinks and a window of 124 in every
  layer (the tokens are fed one at a time once the cache is full).

For each it reports the bytes the caches **allocate** (``nbytes`` of every layer's cache) and
the bytes they **hold** for the tokens kept (the package's formula), both per token of the
sequence, and the ratio of the held bytes to multi-head attention's. The exact caches must give
the logits of the uncached forward pass (float32, to 1e-4); the results go to
``benchmarks/results/caches.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from attention_book import modern, seed_everything
from attention_book.efficient import kv_cache_bytes
from attention_book.models.decoder import DecoderLM

from ._report import finish

RESULTS = Path(__file__).resolve().parent / "results"
SHAPE = {"vocab_size": 256, "d_model": 256, "num_heads": 8, "num_layers": 4, "d_ff": 512}
HEAD = SHAPE["d_model"] // SHAPE["num_heads"]
RESERVED = 2048  # positions a contiguous cache reserves: the longest sequence it may serve
BLOCK, WINDOW, GLOBAL_EVERY, SINKS = 16, 128, 4, 4


def model_with(attention=None, kv_heads=None):
    """The benchmark's decoder, seeded, eval mode, with the attention factory given."""
    seed_everything(0)
    return DecoderLM(**SHAPE, num_kv_heads=kv_heads, max_len=RESERVED, attention=attention).eval()


def paged_caches(model, tokens):
    """One PagedKVCache per layer (room for the sequence), each seen as a KVCache."""
    blocks = -(-tokens // BLOCK)
    caches = []
    for _ in range(model.num_layers):
        pool = modern.PagedKVCache(blocks, BLOCK, model.num_kv_heads, model.head_dim)
        pool.new_sequence(0)
        caches.append(modern.PagedSequenceCache(pool, 0))
    return caches


def variants(tokens):
    """``name -> (model, make_caches, held_bytes, exact)`` for every kind of cache."""
    layers = SHAPE["num_layers"]
    windows = modern.layer_windows(layers, WINDOW, GLOBAL_EVERY)
    d_latent, d_rope = 4 * HEAD, HEAD // 2  # DeepSeek-V2's ratios
    d_model, heads = SHAPE["d_model"], SHAPE["num_heads"]
    rows = {}
    for name, kv in (("MHA", heads), ("GQA", 2), ("MQA", 1)):
        rows[name] = (
            model_with(kv_heads=kv),
            lambda m: m.new_caches(),
            kv_cache_bytes(layers, kv, HEAD, tokens),
            True,
        )
    rows["MLA"] = (
        model_with(lambda i: modern.MultiHeadLatentAttention(d_model, heads, d_latent, d_rope)),
        lambda m: m.new_caches(),
        modern.latent_cache_bytes(layers, d_latent, d_rope, tokens),
        True,
    )
    rows["paged"] = (
        model_with(),
        lambda m: paged_caches(m, tokens),
        kv_cache_bytes(layers, heads, HEAD, -(-tokens // BLOCK) * BLOCK),
        True,
    )
    rows["local:global"] = (
        model_with(lambda i: modern.WindowedAttention(d_model, heads, window=windows[i])),
        lambda m: m.new_caches(),
        modern.hybrid_cache_bytes(layers, heads, HEAD, tokens, WINDOW, GLOBAL_EVERY),
        True,
    )
    rows["sinks"] = (
        model_with(lambda i: modern.SinkAttention(d_model, heads)),
        lambda m: [modern.SinkCache(SINKS, WINDOW - SINKS) for _ in range(layers)],
        kv_cache_bytes(layers, heads, HEAD, min(tokens, WINDOW)),
        False,  # evicts: its logits differ from the full forward pass by design
    )
    return rows


@torch.no_grad()
def feed(model, caches, ids):
    """Process ``ids`` through the caches: in one pass while they fit, then token by token."""
    room = min(getattr(c, "max_len", RESERVED) for c in caches)
    first = min(ids.shape[1], room)
    logits = model(ids[:, :first], caches)[:, -1]
    for t in range(first, ids.shape[1]):
        logits = model(ids[:, t : t + 1], caches)[:, -1]
    return logits


def run(tokens):
    ids = torch.randint(
        3, SHAPE["vocab_size"], (1, tokens), generator=torch.Generator().manual_seed(1)
    )
    rows = []
    mha_held = None
    for name, (model, make_caches, held, exact) in variants(tokens).items():
        caches = make_caches(model)
        logits = feed(model, caches, ids)
        allocated = sum(cache.nbytes for cache in caches)
        error = None
        if exact:
            with torch.no_grad():
                error = (model(ids)[:, -1] - logits).abs().max().item()
        mha_held = held if name == "MHA" else mha_held
        row = {
            "cache": name,
            "allocated_bytes_per_token": allocated / tokens,
            "held_bytes_per_token": held / tokens,
            "held_vs_mha": held / mha_held,
            "max_logit_error": error,
        }
        rows.append(row)
        shown = "evicts" if error is None else f"{error:.1e}"
        print(
            f"{name:13s} allocated {row['allocated_bytes_per_token']:8.0f} B/token, held "
            f"{row['held_bytes_per_token']:7.0f} B/token ({row['held_vs_mha']:.3f} of MHA), "
            f"logits vs full pass: {shown}",
            flush=True,
        )
    return rows


def targets(rows):
    """What must hold in every run: exact caches exact, the paged and latent caches' sizes."""
    by_name = {row["cache"]: row for row in rows}
    report = {
        f"{row['cache']}: logits within 1e-4 of the full pass": row["max_logit_error"] < 1e-4
        for row in rows
        if row["max_logit_error"] is not None
    }
    mha = by_name["MHA"]
    report["paged allocates less than a contiguous reservation"] = (
        by_name["paged"]["allocated_bytes_per_token"] < mha["allocated_bytes_per_token"]
    )
    # DeepSeek-V2: with d_latent = 4 d_head and d_rope = d_head / 2, a layer caches 4.5 d_head
    # numbers per token, as much as grouped-query attention with 2.25 key/value heads
    report["MLA holds what GQA with 2.25 key/value heads would"] = (
        abs(by_name["MLA"]["held_vs_mha"] - 2.25 / SHAPE["num_heads"]) < 1e-12
    )
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1000, help="sequence length")
    parser.add_argument("--quick", action="store_true", help="200 tokens: a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON")
    args = parser.parse_args(argv)
    tokens = 200 if args.quick else args.tokens
    if not 0 < tokens <= RESERVED:
        parser.error(f"--tokens must be in 1..{RESERVED}, got {tokens}")
    print(f"DecoderLM {SHAPE}, {tokens} tokens, contiguous caches reserve {RESERVED}, fp32")
    rows = run(tokens)
    report = targets(rows)
    return finish(
        args.out,
        "caches",
        "memory per token of chapter 7's caches",
        rows,
        report,
        quick=args.quick,
        tokens=tokens,
        reserved=RESERVED,
    )


if __name__ == "__main__":
    raise SystemExit(main())
