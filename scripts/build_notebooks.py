"""Turn the MyST sources in book/ into executed notebooks in notebooks/.

    python scripts/build_notebooks.py                 # every chapter page
    python scripts/build_notebooks.py book/01_intuition/01_soft_lookup.md
    python scripts/build_notebooks.py --labs          # student labs, in notebooks/labs/

Pages that train on one thread are built two at a time (``--jobs``), each in its own process;
pages that time code (``attention_book: {timing: true}``) are built alone, after them.

Each page is converted with jupytext, executed top to bottom in a fresh kernel (in its
notebook folder, as Colab would run it), and written with its outputs. The output is made
reproducible: cells are numbered, widget model ids are derived from the page's name, and no
execution timestamps are stored, so running twice gives the same file.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jupytext
import nbformat
from format_book import docstring_node
from IPython.core.inputtransformer2 import TransformerManager
from nbclient import NotebookClient

import labs

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
NOTEBOOKS = ROOT / "notebooks"
LABS = NOTEBOOKS / "labs"
BUDGET_S = 60.0  # every page must execute within this on 2 cores...
LONG_BUDGET_S = 120.0  # ...unless its front matter says `attention_book: {budget_s: 120}`
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
IPYTHON = TransformerManager()


def page_budget(notebook: Path) -> float:
    """The page's budget in seconds: 60, or what its front matter asks for, at most 120."""
    asked = nbformat.read(notebook, as_version=4).metadata.get("attention_book", {}).get("budget_s")
    return min(float(asked), LONG_BUDGET_S) if asked else BUDGET_S


def is_chapter_page(path: Path) -> bool:
    """A chapter page is a MyST-NB text notebook: its front matter names a kernel."""
    head = path.read_text(encoding="utf-8")[:600]
    return head.startswith("---") and "kernelspec:" in head


def chapter_sources() -> list[Path]:
    return sorted(p for p in BOOK.rglob("*.md") if is_chapter_page(p))


def notebook_path(source: Path) -> Path:
    return NOTEBOOKS / source.relative_to(BOOK).with_suffix(".ipynb")


def lab_path(source: Path) -> Path:
    return LABS / source.relative_to(BOOK).with_suffix(".ipynb")


def output_path(source: Path, lab: bool) -> Path:
    return lab_path(source) if lab else notebook_path(source)


def renumber_widgets(nb: nbformat.NotebookNode, page: str) -> nbformat.NotebookNode:
    """Replace the random widget model ids with ids derived from the page name."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    if not state:
        return nb
    mapping = {
        old: uuid.uuid5(uuid.NAMESPACE_URL, f"{page}#{i}").hex for i, old in enumerate(state)
    }
    text = json.dumps(nb)
    text = re.sub("|".join(map(re.escape, mapping)), lambda m: mapping[m.group(0)], text)
    return nbformat.from_dict(json.loads(text))


def read_page(source: Path, lab: bool = False) -> nbformat.NotebookNode:
    """Read a MyST page as a notebook (its student lab when ``lab``), with stable cell ids."""
    text = source.read_text(encoding="utf-8")
    nb = jupytext.reads(labs.to_lab(text) if lab else text, fmt="md:myst")
    nb.metadata.pop("jupytext", None)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"  # jupytext draws random ids; stable ones keep diffs small
    return nb


def build(source: Path, lab: bool = False) -> float:
    """Execute one page (or its lab) and write the notebook; return the seconds it took."""
    target = output_path(source, lab)
    target.parent.mkdir(parents=True, exist_ok=True)
    nb = read_page(source, lab)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(target.parent)}},
        store_widget_state=True,
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb = renumber_widgets(nb, str(target.relative_to(NOTEBOOKS)))
    nbformat.validate(nb)
    nbformat.write(nb, target)
    return seconds


def program(code: str) -> str:
    """What a cell computes: its syntax tree without layout, comments or docstrings.

    IPython lines (``%pip``, ``!ls``) are first turned into the calls IPython makes of them.
    Two cells with the same program give the same outputs, so a change of layout (a string
    split into adjacent literals, a wrapped comment or docstring) needs no re-execution.
    """
    tree = ast.parse(IPYTHON.transform_cell(code))
    for node in ast.walk(tree):
        if docstring_node(node) is not None:
            body = node.body  # type: ignore[attr-defined]
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree)


def same_program(old: str, new: str) -> bool:
    """True when two versions of a cell compute the same (their text may differ)."""
    if old == new:
        return True
    try:
        return program(old) == program(new)
    except SyntaxError:
        return False


def sync_text(source: Path, lab: bool = False) -> bool:
    """Copy the prose and the cell options of a page into its stored notebook, without executing.

    For prose, captions, alt text, nbval tags and the page's own options (``attention_book`` in
    its front matter): outputs depend only on the code, so they stay valid. So does a code
    cell whose new text is the same program (``same_program``): only its text is copied.
    Refuses (raises ``ValueError``) when a code cell computes something else: that needs a
    real execution. Returns whether the notebook changed.
    """
    target = output_path(source, lab)
    stored = nbformat.read(target, as_version=4)
    fresh = read_page(source, lab)
    kinds = [c.cell_type for c in stored.cells]
    if kinds != [c.cell_type for c in fresh.cells] or not all(
        same_program(old.source, new.source)
        for old, new in zip(stored.cells, fresh.cells, strict=True)
        if old.cell_type == "code"
    ):
        raise ValueError(f"{source}: code cells changed; run `make notebooks` for it")
    changed = False
    book_options = fresh.metadata.get("attention_book")  # budget_s, timing: front matter
    if stored.metadata.get("attention_book") != book_options:
        stored.metadata.pop("attention_book", None)
        if book_options is not None:
            stored.metadata["attention_book"] = book_options
        changed = True
    for old, new in zip(stored.cells, fresh.cells, strict=True):
        kept = {k: v for k, v in old.metadata.items() if k == "execution"}
        if {k: v for k, v in old.metadata.items() if k != "execution"} != new.metadata:
            old.metadata, changed = nbformat.from_dict({**new.metadata, **kept}), True
        if old.source != new.source:
            old.source, changed = new.source, True
    if changed:
        nbformat.write(stored, target)
    return changed


def is_timing_page(source: Path) -> bool:
    """True when the page's front matter says it times code: it then runs alone."""
    return bool(read_page(source).metadata.get("attention_book", {}).get("timing"))


def build_in_subprocess(source: Path, lab: bool) -> float:
    """Build one page in a fresh Python process (so that several can run at once)."""
    cmd = [sys.executable, __file__, "--jobs", "1", str(source)] + (["--labs"] if lab else [])
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 and "over budget" not in done.stderr:
        raise RuntimeError(f"{source} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", type=Path, help="pages to build (default: all)")
    parser.add_argument("--labs", action="store_true", help="build the student labs instead")
    parser.add_argument(
        "--jobs", type=int, default=2, help="pages built at once; pages that time code run alone"
    )
    parser.add_argument(
        "--text-only",
        action="store_true",
        help="copy changed prose, options and code layout into the stored notebooks, unexecuted",
    )
    args = parser.parse_args(argv)
    sources = [p.resolve() for p in args.sources] or chapter_sources()
    for source in sources:
        if not source.is_relative_to(BOOK) or not is_chapter_page(source):
            parser.error(f"{source} is not a chapter page under {BOOK}")
    if args.text_only:
        stale = []
        for source in sources:
            try:
                if sync_text(source, lab=args.labs):
                    print(f"prose updated: {output_path(source, args.labs).relative_to(ROOT)}")
            except ValueError as error:
                stale.append(str(error))
        print("\n".join(stale), file=sys.stderr)
        return 1 if stale else 0
    timings, budgets = {}, {}

    def done(source: Path, seconds: float) -> None:
        name = str(source.relative_to(ROOT))
        timings[name] = seconds
        target = output_path(source, args.labs).relative_to(ROOT)
        budgets[name] = page_budget(ROOT / target)
        print(f"{seconds:6.1f} s  {name} -> {target}", flush=True)

    if args.jobs <= 1 or len(sources) == 1:
        for source in sources:
            print(f"executing {source.relative_to(ROOT)} ...", flush=True)
            done(source, build(source, lab=args.labs))
    else:
        timing = [s for s in sources if is_timing_page(s)]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {
                s: pool.submit(build_in_subprocess, s, args.labs)
                for s in sources
                if s not in timing
            }
            for source, future in futures.items():
                done(source, future.result())
        for source in timing:  # alone, after the others: nothing else disturbs their clocks
            done(source, build_in_subprocess(source, args.labs))
    over = {k: f"{v:.0f} s of {budgets[k]:.0f} s" for k, v in timings.items() if v > budgets[k]}
    print(f"{len(timings)} page(s) in {sum(timings.values()):.0f} s")
    if over:
        print(f"over budget: {over}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
