"""Student labs: generated from the book's sources, up to date, runnable, and leak-free."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import build_notebooks  # noqa: E402
import grade_labs  # noqa: E402
import labs  # noqa: E402

SOURCES = build_notebooks.chapter_sources()
LAB_FILES = sorted(build_notebooks.LABS.rglob("*.ipynb"))


def source_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def cells_of(nb):
    return [(c.cell_type, c.source, sorted(c.metadata.get("tags", []))) for c in nb.cells]


# --- the transformation ------------------------------------------------------------------

PAGE = '''---
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A page

```{code-cell} ipython3
x = 1
```

## Exercises

```{exercise}
:label: ex-one

Write `double`.
```

```{solution-start} ex-one
:class: dropdown
```

A written explanation that gives the answer away.

```{code-cell} ipython3
:tags: [solution]

import math


def double(x):
    """Return twice x."""
    # Hint: multiplication works.
    y = x * 2
    return y
```

```{solution-end}
```

```{code-cell} ipython3
check(double)
```
'''


def test_to_lab_stubs_solutions_and_removes_written_answers():
    lab = labs.to_lab(PAGE)
    assert "> **Lab version.**" in lab.split("# A page", 1)[1].split("```", 1)[0]
    assert "**Exercise 1.**\n\nWrite `double`." in lab
    assert '    """Return twice x."""\n    # Hint: multiplication works.\n' in lab
    assert "    raise NotImplementedError" in lab
    assert "import math" in lab and "check(double)" in lab and "x = 1" in lab
    for gone in ("y = x * 2", "return y", "gives the answer away", "solution-start",
                 "solution-end", "{exercise}"):  # fmt: skip
        assert gone not in lab
    nb = jupytext.reads(lab, fmt="md:myst")
    assert [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"][1] == [
        "solution"
    ]


def test_stub_of_a_class_stubs_every_method():
    code = '''class Net(nn.Module):
    """A net."""

    size = 3

    def __init__(self, d):
        """Make it."""
        # Hint: call super().__init__() first.
        super().__init__()
        self.d = d

    def forward(self, x):
        return x * self.d
'''
    stub = labs.stub_solution(code)
    assert "size = 3" in stub and '"""Make it."""' in stub and "# Hint: call super()" in stub
    assert stub.count("raise NotImplementedError") == 2
    assert "self.d = d" not in stub and "return x * self.d" not in stub
    compile(stub, "stub", "exec")


def test_free_code_keeps_only_its_hints():
    stub = labs.stub_solution("# Hint: try a tiny T.\ncold = f(1e-3)\nprint(cold)\n")
    assert stub == "# Hint: try a tiny T.\n# Your code here."


def test_a_hint_keeps_the_comment_lines_that_continue_it():
    code = (
        "def f(x):\n"
        "    # Hint: a hint that runs\n"
        "    # over two lines.\n"
        "    # A note for the solution only? No: still the hint's run.\n"
        "    y = x + 1  # not a hint\n"
        "    # a comment after code\n"
        "    return y\n"
    )
    stub = labs.stub_solution(code)
    assert "# over two lines." in stub and "# a comment after code" not in stub
    free = labs.stub_solution("# Hint: first\n# second\nx = 1\n# third\n")
    assert free == "# Hint: first\n# second\n# Your code here."


def test_unclosed_solution_is_an_error():
    with pytest.raises(ValueError, match="solution-start.*has no.*solution-end"):
        labs.to_lab("```{solution-start} x\n```\n\ntext\n")


# --- the generated labs ------------------------------------------------------------------


def test_every_chapter_page_has_a_lab():
    assert set(LAB_FILES) == {build_notebooks.lab_path(s) for s in SOURCES}


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_lab_is_up_to_date(source):
    stored = nbformat.read(build_notebooks.lab_path(source), as_version=4)
    fresh = build_notebooks.read_page(source, lab=True)
    assert cells_of(stored) == cells_of(fresh), f"run `make labs PAGES={source_id(source)}`"


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_lab_ran_top_to_bottom_and_its_checks_say_not_implemented(source):
    nb = nbformat.read(build_notebooks.lab_path(source), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    checks = [c for c in code if re.search(r"checks\.check_\w+\(", c.source)]
    page = jupytext.read(source)
    assert len(checks) == sum(
        bool(re.search(r"checks\.check_\w+\(", c.source)) for c in page.cells
    ), "every check cell of the page stays in the lab"
    for cell in checks:
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "not implemented yet" in text, cell.source


def _solution_lines(source: Path) -> set[str]:
    """Lines a student must not see: the solution cells' bodies and written solutions."""
    text = source.read_text(encoding="utf-8")
    hidden: set[str] = set()
    for name, block in labs._blocks(text.splitlines()):
        if name == "code-cell" and "solution" in labs._tags(block):
            hidden |= {line.strip() for line in labs._split_code_cell(block)[1]}
    for region in re.findall(r"```\{solution-start\}.*?```\{solution-end\}", text, re.S):
        hidden |= {line.strip() for line in region.splitlines() if not line.startswith("```")}
    return hidden


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_no_solution_line_leaks_into_the_lab(source):
    lab = nbformat.read(build_notebooks.lab_path(source), as_version=4)
    text = source.read_text(encoding="utf-8")
    stubs = {  # what the lab is meant to keep: signatures, docstrings, hints
        line.strip()
        for name, block in labs._blocks(text.splitlines())
        if name == "code-cell" and "solution" in labs._tags(block)
        for line in labs.stub_solution("\n".join(labs._split_code_cell(block)[1])).splitlines()
    }
    outside = re.sub(r"```\{solution-start\}.*?```\{solution-end\}", "", text, flags=re.S)
    taught = {line.strip() for line in outside.splitlines()}  # shown outside the solutions
    lab_lines = {line.strip() for c in lab.cells for line in c.source.splitlines()}
    leaks = {
        line
        for line in _solution_lines(source) & lab_lines
        if len(line) >= 8 and not line.startswith("#") and line not in stubs | taught
    }
    assert not leaks, f"solution lines in the lab: {sorted(leaks)}"


# --- grading -----------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_grading_finds_every_check_and_answer(source):
    """The grader wraps the lab's check cells, the page's own; each answer has its slot."""
    page = nbformat.read(build_notebooks.notebook_path(source), 4)
    lab = nbformat.read(build_notebooks.lab_path(source), 4)
    _, wrapped = grade_labs.graded_notebook(lab, grade_labs.answers(lab, page))
    page_checks = [
        (cell.source, "".join(o.get("text", "") for o in cell.outputs))
        for cell in page.cells
        if cell.cell_type == "code" and grade_labs.CHECK_CALL.search(cell.source)
    ]
    assert [checker for _, checker, _ in wrapped] == [
        grade_labs.CHECK_CALL.search(code).group(1) for code, _ in page_checks
    ]
    assert all(text.startswith("✓") for _, text in page_checks if text)
    slots = [c for c in lab.cells if "solution" in c.metadata.get("tags", [])]
    answers = [c for c in page.cells if "solution" in c.metadata.get("tags", [])]
    assert len(slots) == len(answers)


# --- links to the labs -------------------------------------------------------------------

REPO = "paying-attention/paying-attention"


def lab_links(source: Path) -> list[str]:
    lab = build_notebooks.lab_path(source).relative_to(ROOT).as_posix()
    return [
        f"https://colab.research.google.com/github/{REPO}/blob/main/{lab}",
        f"https://mybinder.org/v2/gh/{REPO}/main?urlpath=tree/{lab}",
    ]


def test_repository_in_links_is_the_configured_one():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == f"https://github.com/{REPO}"


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_exercises_section_links_its_lab(source):
    exercises = source.read_text(encoding="utf-8").split("\n## Exercises\n", 1)[1]
    for link in lab_links(source):
        assert f"({link})" in exercises.split("```{exercise}", 1)[0]


def test_instructor_guide_links_every_lab():
    guide = (ROOT / "book" / "instructors.md").read_text(encoding="utf-8")
    for source in SOURCES:
        for link in lab_links(source):
            assert f"({link})" in guide, link
