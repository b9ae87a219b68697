"""Run every chapter page top to bottom under other seeds and another CPU code path.

    python scripts/robust.py                      # the three checks of `make robust`
    python scripts/robust.py --check seed=1 book/05_vision/04_channel_spatial.md
    python scripts/robust.py --save /tmp/runs     # also keep each executed notebook

A page's claims are asserts with margins; this proves the margins. Each check sets one
environment variable in the page's kernel:

- ``seed=K``: ``ATTENTION_BOOK_SEED=K``, which shifts every seed the page asks for
  (:func:`attention_book.effective_seed`): new initial weights, batch orders and samples;
- ``cpu=default``: ``ATEN_CPU_CAPABILITY=default``, PyTorch's unvectorised CPU kernels, which
  round differently, as another reader's processor would;
- ``book``: nothing changed, the run that made the stored notebooks.

Each page runs in a fresh kernel in its notebook folder, as in `make notebooks`, but nothing
is written to notebooks/. Pages that train on one thread run two at a time (``--jobs``);
pages that time code (``attention_book: {timing: true}`` in their front matter) run alone
afterwards, so that no other page disturbs their clocks. Prints each page's pass or fail and
its time, and exits 1 if any page failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from build_notebooks import NOTEBOOKS, ROOT, chapter_sources, read_page

CHECKS = {
    "book": {},
    "seed=1": {"ATTENTION_BOOK_SEED": "1"},
    "seed=2": {"ATTENTION_BOOK_SEED": "2"},
    "cpu=default": {"ATEN_CPU_CAPABILITY": "default"},
}
DEFAULT_CHECKS = ["seed=1", "seed=2", "cpu=default"]


def is_timing_page(source: Path) -> bool:
    """True when the page's front matter says it times code: it must run alone."""
    return bool(read_page(source).metadata.get("attention_book", {}).get("timing"))


def run_one(source: Path, save: Path | None) -> None:
    """Execute one page in this process's environment (the worker half of the script)."""
    nb = read_page(source)
    target = NOTEBOOKS / source.relative_to(ROOT / "book").with_suffix(".ipynb")
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(target.parent)}}
    )
    try:
        client.execute()
    finally:
        if save is not None:
            out = save / target.relative_to(NOTEBOOKS)
            out.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out)


def run_page(source: Path, check: str, save: Path | None) -> tuple[bool, float, str]:
    """Run one page under one check in a subprocess; return (passed, seconds, last error)."""
    env = {**os.environ, **CHECKS[check]}
    cmd = [sys.executable, __file__, "--worker", str(source)]
    if save is not None:
        cmd += ["--save", str(save / check)]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    error = ""
    if done.returncode != 0:
        text = re.sub(r"\x1b\[[0-9;]*m", "", done.stderr + done.stdout)
        lines = [ln for ln in text.splitlines() if ln.strip()]
        error = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else "")
    return done.returncode == 0, seconds, error.strip()[:200]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages to run (default: all)")
    parser.add_argument(
        "--check", action="append", choices=sorted(CHECKS), help="repeatable; default: the three"
    )
    parser.add_argument("--jobs", type=int, default=2, help="pages run at once (not timing pages)")
    parser.add_argument("--save", type=Path, help="keep the executed notebooks under SAVE/CHECK/")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sources = [p.resolve() for p in args.pages] or chapter_sources()
    if args.worker:
        try:
            run_one(sources[0], args.save)
        except CellExecutionError as error:
            print(str(error)[-2000:], file=sys.stderr)
            return 1
        return 0
    checks = args.check or DEFAULT_CHECKS
    timing = [s for s in sources if is_timing_page(s)]
    others = [s for s in sources if s not in timing]
    failed = 0
    for check in checks:
        settings = " ".join(f"{k}={v}" for k, v in CHECKS[check].items())
        print(f"== {check} ({settings or 'as stored'})")
        start = time.perf_counter()

        def report(source: Path, result: tuple[bool, float, str], check: str = check) -> None:
            passed, seconds, error = result
            name = source.relative_to(ROOT / "book")
            print(f"{'pass' if passed else 'FAIL'} {seconds:6.1f} s  {name}  {error}", flush=True)

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {s: pool.submit(run_page, s, check, args.save) for s in others}
            for source, future in futures.items():
                result = future.result()
                report(source, result)
                failed += not result[0]
        for source in timing:
            result = run_page(source, check, args.save)
            report(source, result)
            failed += not result[0]
        print(f"   {check}: {len(sources)} pages in {time.perf_counter() - start:.0f} s wall")
    print(f"{failed} page run(s) failed" if failed else "every page passed every check")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
