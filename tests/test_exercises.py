"""No give-away exercises: a solution must not re-type its page's code.

A solution cell that shares two or more non-trivial lines with its page's other code cells is
flagged. A line is non-trivial when it is longer than 20 characters (comments and trailing
comments aside) and is not an import, a print, an assert, a plotting call or a fragment of a
statement split over lines (a block header, an opening bracket, a short argument line).

The exercises below share lines on purpose, each for the reason given; every other exercise
must not. An entry that is no longer flagged must be removed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import assignments  # noqa: E402

import build_notebooks  # noqa: E402
import labs  # noqa: E402

TRIVIAL = re.compile(
    r"^(import |from \S+ import |print\(|assert |plt\.|ax\w*[.\[]|fig\w*[,.\s=]|axes\b|plots\.|"
    r"glue\()"
)
FRAGMENT = re.compile(r"([:(\[{]$|^.{0,24},$)")
ACCEPTED = {
    "ex-sdpa": "extends the page's unmasked attention with masks and empty rows; the shared "
    "lines are the formula it extends",
    "ex-attention-backward": "the page's backward pass made batched and safe with the D trick; "
    "the shared lines are the gradients it starts from",
    "ex-triton-causal": "asks for the page's kernel with two changes; the shared lines are the "
    "unchanged part of the kernel",
    "ex-causal-naive": "a measurement: the shared lines are the page's timing harness (inputs "
    "and the two unmasked contenders), the answer is the masked variants and what they show",
}


def nontrivial(code: str) -> set[str]:
    lines = set()
    for line in code.splitlines():
        line = line.split("  #")[0].strip()
        if len(line) > 20 and not line.startswith("#"):
            if not TRIVIAL.match(line) and not FRAGMENT.search(line):
                lines.add(line)
    return lines


def shared_lines() -> dict[str, set[str]]:
    """Exercise label -> the non-trivial lines its solution shares with the page."""
    found = {}
    for source in build_notebooks.chapter_sources():
        text = source.read_text(encoding="utf-8")
        items = assignments.parse(text)
        taught: set[str] = set()  # the code cells outside the solutions
        for item in items:
            if not isinstance(item, assignments.Exercise) and item[0].startswith("```{code-cell"):
                taught |= nontrivial("\n".join(labs._split_code_cell(item)[1]))
        for item in items:
            if isinstance(item, assignments.Exercise):
                for code in item.code:
                    shared = nontrivial(code) & taught
                    if len(shared) >= 2:
                        found[item.label] = found.get(item.label, set()) | shared
    return found


def test_no_solution_retypes_its_page():
    flagged = {k: v for k, v in shared_lines().items() if k not in ACCEPTED}
    assert not flagged, f"solutions that re-type their page's code: {flagged}"


def test_every_accepted_exercise_is_still_flagged():
    assert set(ACCEPTED) <= set(shared_lines())


@pytest.mark.parametrize(
    ("code", "lines"),
    [
        ("x = torch.ones(3, 4).sum(dim=0)  # a comment\n", {"x = torch.ones(3, 4).sum(dim=0)"}),
        ("import numpy as np\nprint('a long line of output')\nassert a_long_name == 1\n", set()),
        ("with torch.no_grad():\n    ax.plot(range(10), range(10))\nshort = 1\n", set()),
        ("result = function(\n    first_argument,\n)\n", set()),
    ],
)
def test_what_counts_as_a_line(code, lines):
    assert nontrivial(code) == lines


def test_every_chapter_has_two_auto_checked_exercises():
    """Each chapter has at least two exercises whose check cell calls a checker."""
    checked: dict[str, set[str]] = {}
    for source in build_notebooks.chapter_sources():
        for item in assignments.parse(source.read_text(encoding="utf-8")):
            if isinstance(item, assignments.Exercise) and item.checked:
                checked.setdefault(source.parent.name, set()).add(item.label)
    chapters = {s.parent.name for s in build_notebooks.chapter_sources()}
    assert set(checked) == chapters
    assert all(len(labels) >= 2 for labels in checked.values()), checked
