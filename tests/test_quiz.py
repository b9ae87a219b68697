"""``attention_book.quiz``: the chapter quizzes are well formed and shown with no kernel."""

from __future__ import annotations

import copy
import json
import re
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

from attention_book import quiz

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import build_notebooks  # noqa: E402


def _labels(chapter: str) -> set[str]:
    labels = set()
    for page in (ROOT / "book" / chapter).glob("*.md"):
        labels |= set(re.findall(r"^\((sec-[\w-]+)\)=$", page.read_text(), flags=re.M))
    return labels


@pytest.mark.parametrize("chapter", quiz.CHAPTERS)
def test_each_chapter_has_a_well_formed_quiz(chapter):
    q = quiz.load(chapter)
    assert len(q.questions) >= 5
    assert {question.page for question in q.questions} <= _labels(chapter)
    for question in q.questions:
        assert 3 <= len(question.options) <= 4
        assert sum(o.correct for o in question.options) == 1
        assert all(o.why and len(o.why) <= quiz.MAX_WHY for o in question.options)


@pytest.mark.parametrize("chapter", quiz.CHAPTERS)
def test_each_chapter_ends_with_its_quiz(chapter):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    part = next(
        p for p in toc["parts"] if p["chapters"][0]["file"].startswith(f"notebooks/{chapter}")
    )
    last = ROOT / "book" / (part["chapters"][-1]["file"].removeprefix("notebooks/") + ".md")
    text = last.read_text()
    assert text.rstrip().endswith(f'quiz.show("{chapter}")\n```'), last
    assert "## Chapter quiz" in text
    stored = build_notebooks.notebook_path(last).read_text()
    assert 'class=\\"pa-quiz\\"' in stored, "run `make notebooks` for the page"


def test_the_html_needs_nothing_from_outside():
    q = quiz.load("02_math")
    page = q.html()
    n_options = sum(len(question.options) for question in q.questions)
    assert page.count("<details") == page.count('class="pa-why"') == n_options
    assert page.count('class="pa-option pa-right"') == len(q.questions)
    assert "<script src" not in page and "http" not in page and "@import" not in page
    assert "<code>" in page or "`" not in json.dumps([x.text for x in q.questions])


def test_the_printed_quiz_lists_options_then_answers():
    q = quiz.load("01_intuition")
    text = q._repr_mimebundle_()["text/markdown"]
    answers = ", ".join(f"{n}{'abcd'[x.answer]}" for n, x in enumerate(q.questions, 1))
    assert text.rstrip().endswith(f"*Answers:* {answers}.")
    assert "Not quite" not in text  # the explanations are for the interactive version


def test_the_bank_has_every_answer_and_explanation():
    bank = quiz.bank_markdown()
    for chapter in quiz.CHAPTERS:
        for question in quiz.load(chapter).questions:
            for option in question.options:
                assert option.why in bank
    assert bank.count("**right**") == sum(len(quiz.load(c).questions) for c in quiz.CHAPTERS)


def _data(chapter: str = "01_intuition") -> dict:
    text = resources.files("attention_book").joinpath(f"quizzes/{chapter}.json").read_text()
    return json.loads(text)


def _broken(edit) -> dict:
    data = copy.deepcopy(_data())
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["questions"][0]["options"][0].update(correct=True), "exactly one right"),
        (lambda d: d["questions"][0]["options"].__delitem__(slice(2, None)), "3 or 4 options"),
        (lambda d: d["questions"][0]["options"][1].update(why=""), "one-line explanation"),
        (lambda d: d["questions"][0]["options"][1].update(why="x" * 300), "one-line explanation"),
        (lambda d: d["questions"].__delitem__(slice(4, None)), "at least 5 questions"),
        (lambda d: d["questions"][1].update(id=d["questions"][0]["id"]), "ids repeat"),
    ],
)
def test_a_broken_quiz_is_refused(edit, message):
    with pytest.raises(ValueError, match=message):
        quiz._parse("01_intuition", _broken(edit))


def test_an_unknown_chapter_is_refused():
    with pytest.raises(ValueError, match="chapter must be one of"):
        quiz.load("08_future")
