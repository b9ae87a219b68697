"""End-of-chapter quizzes: multiple choice, every option with a one-line explanation.

The questions live in the package (``quizzes/<chapter>.json``), so that the site, a Jupyter
kernel and the instructors' quiz bank all read the same text. :func:`show` returns an object
that Jupyter and the book's pages display as HTML: each option is a ``<details>`` element, so
a click opens its explanation with no kernel, no script and nothing fetched, and a small
inlined script only colours the choice. Printed (PDF, or a plain text kernel) it becomes a
list of questions, with the answers after them.

Introduced at the end of every chapter (for example :ref:`sec-promises`).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

__all__ = ["CHAPTERS", "Option", "Question", "Quiz", "bank_markdown", "load", "show"]

CHAPTERS = (
    "01_intuition",
    "02_math",
    "03_rnn",
    "04_transformers",
    "05_vision",
    "06_efficiency",
    "07_modern",
)
MIN_QUESTIONS = 5
MAX_WHY = 200  # characters: one line of explanation


@dataclass(frozen=True)
class Option:
    """One answer: its text, whether it is the right one, and why.

    Introduced in :ref:`sec-promises`.
    """

    text: str
    correct: bool
    why: str


@dataclass(frozen=True)
class Question:
    """A question, the MyST label of the page it draws on, and its options.

    Introduced in :ref:`sec-promises`.
    """

    id: str
    page: str
    text: str
    options: tuple[Option, ...]

    @property
    def answer(self) -> int:
        """The index of the right option."""
        return next(i for i, o in enumerate(self.options) if o.correct)


@dataclass(frozen=True)
class Quiz:
    """A chapter's quiz: shown as HTML in a browser or Jupyter, as text in print.

    Introduced in :ref:`sec-promises`.
    """

    chapter: str
    title: str
    questions: tuple[Question, ...]

    def html(self) -> str:
        """The quiz as HTML that works with no kernel, no script and no network."""
        ident = f"pa-quiz-{self.chapter}"
        parts = [f'<div class="pa-quiz" id="{ident}">']
        for n, q in enumerate(self.questions, 1):
            parts.append(f'<div class="pa-question"><p><strong>{n}.</strong> {_text(q.text)}</p>')
            for o in q.options:
                verdict = "Right." if o.correct else "Not quite."
                kind = "pa-right" if o.correct else "pa-wrong"
                parts.append(
                    f'<details class="pa-option {kind}"><summary>{_text(o.text)}</summary>'
                    f'<p class="pa-why"><strong>{verdict}</strong> {_text(o.why)}</p></details>'
                )
            parts.append("</div>")
        parts.append("</div>")
        return "".join(parts) + f"\n<style>{_CSS}</style>\n<script>{_SCRIPT % ident}</script>"

    def markdown(self) -> str:
        """The quiz as text: the questions and options, then the answers."""
        lines = []
        for n, q in enumerate(self.questions, 1):
            lines.append(f"**{n}.** {q.text}\n")
            lines += [f"- {'abcd'[i]}. {o.text}" for i, o in enumerate(q.options)]
            lines.append("")
        answers = [f"{n}{'abcd'[q.answer]}" for n, q in enumerate(self.questions, 1)]  # 1c, 2a, ...
        lines.append(f"*Answers:* {', '.join(answers)}.")
        return "\n".join(lines) + "\n"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {
            "text/html": self.html(),
            "text/markdown": self.markdown(),
            "text/plain": f"<quiz: {self.title}, {len(self.questions)} questions>",
        }


def _text(text: str) -> str:
    """Escape HTML and turn `code` into <code>."""
    escaped = html.escape(text)
    pieces = escaped.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


def _fail(where: str, problem: str) -> ValueError:
    return ValueError(f"quiz {where}: {problem}")


def _parse(chapter: str, data: Any) -> Quiz:
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise _fail(chapter, "expected an object with a list of questions")
    questions = []
    for q in data["questions"]:
        where = f"{chapter}, question {q.get('id', '?')}"
        options = tuple(
            Option(str(o["text"]), bool(o["correct"]), str(o["why"])) for o in q["options"]
        )
        if not 3 <= len(options) <= 4:
            raise _fail(where, f"needs 3 or 4 options, got {len(options)}")
        right = sum(o.correct for o in options)
        if right != 1:
            raise _fail(where, f"needs exactly one right option, got {right}")
        for o in options:
            if not o.why.strip() or len(o.why) > MAX_WHY or "\n" in o.why:
                raise _fail(where, f"each option needs a one-line explanation: {o.text!r}")
        questions.append(Question(str(q["id"]), str(q["page"]), str(q["question"]), options))
    if len(questions) < MIN_QUESTIONS:
        raise _fail(chapter, f"needs at least {MIN_QUESTIONS} questions, got {len(questions)}")
    if len({q.id for q in questions}) != len(questions):
        raise _fail(chapter, "question ids repeat")
    return Quiz(chapter, str(data.get("chapter", chapter)), tuple(questions))


def load(chapter: str) -> Quiz:
    """Read and check one chapter's quiz.

    Args:
        chapter: a chapter folder name, one of ``CHAPTERS`` (such as ``"02_math"``).

    Returns:
        The :class:`Quiz`.

    Raises:
        ValueError: for an unknown chapter, or a quiz that breaks the rules (at least five
            questions; three or four options; exactly one right; a one-line explanation each).

    Introduced in :ref:`sec-promises`.
    """
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {CHAPTERS}, got {chapter!r}")
    text = resources.files("attention_book").joinpath(f"quizzes/{chapter}.json").read_text("utf-8")
    return _parse(chapter, json.loads(text))


def show(chapter: str) -> Quiz:
    """The chapter's quiz, to display as a cell's output.

    Args:
        chapter: a chapter folder name, one of ``CHAPTERS`` (such as ``"02_math"``).

    Returns:
        The :class:`Quiz`; see :func:`load` for the errors.

    Introduced in :ref:`sec-promises`.
    """
    return load(chapter)


def bank_markdown() -> str:
    """Every quiz with its answers and explanations, as MyST, for the instructors' guide.

    Returns:
        MyST text with a section per chapter, each option marked right or wrong, and why.

    Introduced in :ref:`sec-instructors`.
    """
    out = []
    for chapter in CHAPTERS:
        quiz = load(chapter)
        out.append(f"#### {quiz.title}\n")
        for n, q in enumerate(quiz.questions, 1):
            out.append(f"**{n}.** {q.text} ({{ref}}`{q.page}`)\n")
            for i, o in enumerate(q.options):
                mark = "**right**" if o.correct else "wrong"
                out.append(f"- {'abcd'[i]}. {o.text} — {mark}: {o.why}")
            out.append("")
    return "\n".join(out)


_CSS = (
    ".pa-quiz{margin:1em 0}.pa-question{margin:0 0 1.2em}"
    ".pa-option{margin:.3em 0 .3em 1em;border-left:3px solid #999;padding-left:.6em}"
    ".pa-option summary{cursor:pointer}.pa-why{margin:.3em 0 .2em;font-size:.92em}"
    ".pa-option[open].pa-right{border-left-color:#009e73}"
    ".pa-option[open].pa-wrong{border-left-color:#d55e00}"
    ".pa-option summary:focus{outline:2px solid #d55e00;outline-offset:1px}"
)
# The <details> elements work without it; the script only marks the last choice of a question.
_SCRIPT = (
    "(function(){var q=document.getElementById('%s');if(!q)return;"
    "q.querySelectorAll('.pa-option').forEach(function(d){d.addEventListener('toggle',"
    "function(){if(d.open){d.parentNode.querySelectorAll('.pa-option').forEach(function(o){"
    "o.classList.toggle('pa-chosen',o===d);});}});});})();"
)
