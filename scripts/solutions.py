"""Write one solutions notebook per chapter for instructors, from the executed chapter pages.

    python scripts/solutions.py            # writes instructors/solutions/<chapter>.ipynb
    python scripts/solutions.py --check    # exit 1 when a written notebook is stale

It also writes ``book/_quiz_bank.md``, the chapter quizzes with their answers, which the
instructors' guide includes: the quizzes' one source is ``attention_book/quizzes``.

Each chapter's notebook lists, page by page, every exercise with its worked solution: the
solution's code cells with the outputs they printed when the book was built, its written
discussion, and the check cell that follows it. Nothing is executed here: the cells come from
``notebooks/``, which nbval re-executes, so the outputs are the book's. The notebooks are for
reading and lecturing, kept apart from the students' labs (``notebooks/labs``); a solution
needs its page's earlier cells to run, so run it on its page.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nbformat

from attention_book import quiz

import build_notebooks
import labs

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "instructors" / "solutions"
QUIZ_BANK = ROOT / "book" / "_quiz_bank.md"
SITE = "https://paying-attention.github.io/paying-attention"
NOTE = (
    "> **For instructors.** Every exercise of this chapter with its worked solution, as the "
    "book's pages print it: the code cells with their outputs from the book's own run, the "
    "written discussion, and the check cell that grades it. The students' labs "
    "(`notebooks/labs`) have none of this. A solution reads variables from its page's earlier "
    "cells: to run one, run its page. Made by `make solutions` from the same sources as the "
    "pages and labs; the test suite fails when it is stale."
)


def _title(nb: nbformat.NotebookNode) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def _code(cell: nbformat.NotebookNode) -> nbformat.NotebookNode:
    new = nbformat.v4.new_code_cell(cell.source)
    new.outputs = cell.get("outputs", [])
    new.execution_count = None
    for output in new.outputs:
        if "execution_count" in output:
            output["execution_count"] = None
    return new


def page_exercises(source: Path) -> list[nbformat.NotebookNode]:
    """The exercise texts, solutions and check cells of one page, in order."""
    nb = nbformat.read(build_notebooks.notebook_path(source), as_version=4)
    cells: list[nbformat.NotebookNode] = []
    in_solution, number, after_solution = False, 0, False
    for cell in nb.cells:
        if cell.cell_type == "code":
            is_check = "checks.check_" in cell.source
            if in_solution or (after_solution and is_check):
                cells.append(_code(cell))
            after_solution = False
            continue
        for name, block in labs._blocks(cell.source.splitlines()):
            if name == "exercise":
                number += 1
                text = "\n".join(labs._exercise_markdown(block, number)).strip()
                cells.append(nbformat.v4.new_markdown_cell(text))
            elif name == "solution-start":
                in_solution = True
                cells.append(nbformat.v4.new_markdown_cell(f"*Solution of exercise {number}.*"))
            elif name == "solution-end":
                in_solution, after_solution = False, True
            elif in_solution and "\n".join(block).strip():
                cells.append(nbformat.v4.new_markdown_cell("\n".join(block).strip()))
    return cells


def chapter_notebook(chapter: str) -> nbformat.NotebookNode:
    """The solutions notebook of one chapter folder, e.g. ``01_intuition``."""
    sources = [s for s in build_notebooks.chapter_sources() if s.parent.name == chapter]
    nb = nbformat.v4.new_notebook()
    number = chapter.split("_", 1)[0].lstrip("0")
    nb.cells.append(nbformat.v4.new_markdown_cell(f"# Chapter {number}: solutions\n\n{NOTE}"))
    for source in sources:
        exercises = page_exercises(source)
        if not exercises:
            continue
        page = nbformat.read(build_notebooks.notebook_path(source), as_version=4)
        url = f"{SITE}/notebooks/{chapter}/{source.stem}.html"
        nb.cells.append(nbformat.v4.new_markdown_cell(f"## {_title(page)}\n\nPage: <{url}>"))
        nb.cells.extend(exercises)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return nb


def chapters() -> list[str]:
    return sorted({s.parent.name for s in build_notebooks.chapter_sources()})


def quiz_bank() -> str:
    """The instructors' copy of every chapter quiz, with answers and explanations."""
    head = "<!-- Written by `make solutions` from attention_book/quizzes; do not edit. -->\n\n"
    return head + quiz.bank_markdown()


def render(nb: nbformat.NotebookNode) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale notebooks")
    args = parser.parse_args(argv)
    texts = {OUT / f"{c}.ipynb": render(chapter_notebook(c)) for c in chapters()}
    texts[QUIZ_BANK] = quiz_bank()
    stale = []
    for path, text in texts.items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
