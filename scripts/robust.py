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
import ast
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

from build_notebooks import NOTEBOOKS, ROOT, chapter_sources, is_timing_page, read_page

CHECKS = {
    "book": {},
    "seed=1": {"ATTENTION_BOOK_SEED": "1"},
    "seed=2": {"ATTENTION_BOOK_SEED": "2"},
    "cpu=default": {"ATEN_CPU_CAPABILITY": "default"},
}
DEFAULT_CHECKS = ["seed=1", "seed=2", "cpu=default"]


def check_env(check: str) -> dict[str, str]:
    """The environment of one check: a named one, or ``seed=K`` for any K."""
    if check in CHECKS:
        return CHECKS[check]
    if check.startswith("seed=") and check[5:].isdigit():
        return {"ATTENTION_BOOK_SEED": check[5:]}
    raise ValueError(f"unknown check {check!r}: one of {sorted(CHECKS)} or seed=K")


class _SoftAsserts(ast.NodeTransformer):
    """``assert test, msg`` -> record the failure in ``_soft_failures`` and go on."""

    def __init__(self, cell: int) -> None:
        self.cell = cell

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        where = ast.Constant(f"cell {self.cell}, line {node.lineno}: {ast.unparse(node.test)}")
        record = ast.parse("_soft_failures.append(None)").body[0]
        assert isinstance(record, ast.Expr) and isinstance(record.value, ast.Call)
        record.value.args = [where]
        return ast.copy_location(ast.If(ast.UnaryOp(ast.Not(), node.test), [record], []), node)


def soften(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Rewrite every assert of the page so that all of its failing claims show in one run."""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # an IPython line (%pip): no assert there
            continue
        cell.source = ast.unparse(ast.fix_missing_locations(_SoftAsserts(i).visit(tree)))
    first = nbformat.v4.new_code_cell("_soft_failures = []")
    last = nbformat.v4.new_code_cell(
        "assert not _soft_failures, '\\n'.join('SOFT FAIL ' + f for f in _soft_failures)"
    )
    nb.cells = [first, *nb.cells, last]
    return nb


def run_one(source: Path, save: Path | None, soft: bool = False) -> None:
    """Execute one page in this process's environment (the worker half of the script)."""
    nb = read_page(source)
    if soft:
        nb = soften(nb)
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


def run_page(
    source: Path, check: str, save: Path | None, soft: bool = False
) -> tuple[bool, float, str]:
    """Run one page under one check in a subprocess; return (passed, seconds, last error)."""
    env = {**os.environ, **check_env(check)}
    cmd = [sys.executable, __file__, "--worker", str(source)] + (["--soft"] if soft else [])
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
        soft_failures = list(  # one line each, in order, wherever the traceback put them
            dict.fromkeys(ln.split("SOFT FAIL ", 1)[1] for ln in lines if "SOFT FAIL " in ln)
        )
        if soft_failures:
            return False, seconds, "\n      ".join(["", *soft_failures])
    return done.returncode == 0, seconds, error.strip()[:200]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages to run (default: all)")
    parser.add_argument(
        "--check", action="append", help=f"{', '.join(CHECKS)} or seed=K; repeatable"
    )
    parser.add_argument("--jobs", type=int, default=2, help="pages run at once (not timing pages)")
    parser.add_argument("--save", type=Path, help="keep the executed notebooks under SAVE/CHECK/")
    parser.add_argument(
        "--soft", action="store_true", help="record every failing assert of a page and go on"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sources = [p.resolve() for p in args.pages] or chapter_sources()
    if args.worker:
        try:
            run_one(sources[0], args.save, soft=args.soft)
        except CellExecutionError as error:
            soft = [ln for ln in str(error).splitlines() if ln.startswith("SOFT FAIL")]
            print("\n".join(soft), file=sys.stderr)
            print(str(error)[-2000:], file=sys.stderr)
            return 1
        return 0
    checks = args.check or DEFAULT_CHECKS
    for check in checks:
        try:
            check_env(check)
        except ValueError as error:
            parser.error(str(error))
    timing = [s for s in sources if is_timing_page(s)]
    others = [s for s in sources if s not in timing]
    failed = 0
    for check in checks:
        settings = " ".join(f"{k}={v}" for k, v in check_env(check).items())
        print(f"== {check} ({settings or 'as stored'})")
        start = time.perf_counter()

        def report(source: Path, result: tuple[bool, float, str], check: str = check) -> None:
            passed, seconds, error = result
            name = source.relative_to(ROOT / "book")
            print(f"{'pass' if passed else 'FAIL'} {seconds:6.1f} s  {name}  {error}", flush=True)

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {s: pool.submit(run_page, s, check, args.save, args.soft) for s in others}
            for source, future in futures.items():
                result = future.result()
                report(source, result)
                failed += not result[0]
        for source in timing:
            result = run_page(source, check, args.save, args.soft)
            report(source, result)
            failed += not result[0]
        print(f"   {check}: {len(sources)} pages in {time.perf_counter() - start:.0f} s wall")
    print(f"{failed} page run(s) failed" if failed else "every page passed every check")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
