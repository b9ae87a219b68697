"""``instructors/solutions``: every exercise with its worked solution, per chapter, up to date."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import solutions  # noqa: E402

import build_notebooks  # noqa: E402
import labs  # noqa: E402

CHAPTERS = solutions.chapters()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_solutions_notebook_is_up_to_date(chapter):
    """Fails when a page changed and `make solutions` was not run."""
    path = solutions.OUT / f"{chapter}.ipynb"
    assert path.read_text(encoding="utf-8") == solutions.render(
        solutions.chapter_notebook(chapter)
    ), f"{path} is stale: run `make solutions`"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_has_its_solution(chapter):
    nb = nbformat.read(solutions.OUT / f"{chapter}.ipynb", as_version=4)
    text = "\n".join(cell.source for cell in nb.cells)
    for source in build_notebooks.chapter_sources():
        if source.parent.name != chapter:
            continue
        page = source.read_text(encoding="utf-8")
        for block_name, block in labs._blocks(page.splitlines()):
            if block_name == "code-cell" and "solution" in labs._tags(block):
                code = "\n".join(labs._split_code_cell(block)[1]).strip()
                assert code in text, f"a solution of {source.name} is missing"
        exercises = len(re.findall(r"^```\{exercise\}", page, flags=re.M))
        solved = len(re.findall(r"^```\{solution-start\}", page, flags=re.M))
        assert exercises == solved, f"{source.name}: an exercise without a solution"
    assert text.count("*Solution of exercise") == sum(
        len(re.findall(r"^```\{solution-start\}", s.read_text(encoding="utf-8"), flags=re.M))
        for s in build_notebooks.chapter_sources()
        if s.parent.name == chapter
    )


def test_solutions_stay_out_of_the_labs_folder():
    assert solutions.OUT.resolve().parent.name == "instructors"
    assert not list((ROOT / "notebooks" / "labs").rglob("*solution*"))


def test_the_quiz_bank_is_up_to_date():
    """The instructors' guide includes the quizzes with answers, made from the same files."""
    assert solutions.QUIZ_BANK.read_text(encoding="utf-8") == solutions.quiz_bank(), (
        "book/_quiz_bank.md is stale: run `make solutions`"
    )
    guide = (ROOT / "book" / "instructors.md").read_text(encoding="utf-8")
    assert "```{include} _quiz_bank.md" in guide
