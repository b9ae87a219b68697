"""``scripts/grade_labs.py``: honest answers get full marks; forged notebooks get none.

The forgeries are those a student can try on a grader that reads the student's own notebook:
replace the checkers, print the pass symbol, delete check cells or edit their outputs, stop
the kernel before the checks, make ``allclose`` always agree, or hand in the package's own
reference. Each is graded on a small lab with two checks; every one must score zero, and the
honest answers, with the same tricks added in extra cells, must still score two.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import build_notebooks  # noqa: E402
import grade_labs  # noqa: E402

SETUP = "import numpy as np\nimport torch\n\nfrom attention_book import attention, checks"
CHECKS = [
    "passed = checks.check_softmax(softmax)",
    "from attention_book import checks\n\npassed = checks.check_causal_mask(causal_mask)",
]
STUBS = [
    'def softmax(x, dim=-1):\n    """Softmax along dim."""\n    raise NotImplementedError',
    'def causal_mask(n, m=None):\n    """The causal mask."""\n    raise NotImplementedError',
]
HONEST = [
    "def softmax(x, dim=-1):\n"
    "    e = (x - x.amax(dim=dim, keepdim=True)).exp()\n"
    "    return e / e.sum(dim=dim, keepdim=True)",
    "def causal_mask(n, m=None):\n"
    "    m = n if m is None else m\n"
    "    return torch.ones(n, m, dtype=torch.bool).tril(diagonal=m - n)",
]
WRONG = [
    "def softmax(x, dim=-1):\n    return x.exp() / x.exp().sum()",
    "def causal_mask(n, m=None):\n    return torch.ones(n, n if m is None else m).bool()",
]
PASS_PRINTED = (
    'print("✓ softmax passes all 7 checks.")\nprint("✓ causal_mask passes all 5 checks.")'
)
REPLACE_CHECKERS = (
    "for name in dir(checks):\n"
    "    if name.startswith('check_'):\n"
    "        setattr(checks, name, lambda fn: print('✓ passes all checks.') or True)"
)
ALLCLOSE = (
    "torch.allclose = lambda *a, **k: True\n"
    "torch.equal = lambda *a, **k: True\n"
    "np.allclose = lambda *a, **k: True\n"
    "np.array_equal = lambda *a, **k: True\n"
    "np.testing.assert_allclose = lambda *a, **k: None\n"
)


def _cell(source: str, solution: bool = False, cell_id: str | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if solution:
        cell.metadata["tags"] = ["solution"]
    if cell_id:
        cell.id = cell_id
    return cell


def notebook(answers: list[str], extra: str | None = None, check_cells: bool = True):
    """The lab with these answers, an extra cell after them, and its check cells or not."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [_cell(SETUP, cell_id="setup")]
    for i, (answer, check) in enumerate(zip(answers, CHECKS, strict=True)):
        nb.cells.append(_cell(answer, solution=True, cell_id=f"answer-{i}"))
        if extra is not None:
            nb.cells.append(_cell(extra))
        if check_cells:
            nb.cells.append(_cell(check, cell_id=f"check-{i}"))
    return nb


FORGERIES = {
    "checkers replaced in an extra cell": (
        notebook(STUBS, extra=REPLACE_CHECKERS),
        "not implemented",
    ),
    "checkers replaced in the answer": (
        notebook([REPLACE_CHECKERS + "\n" + s for s in STUBS]),
        "no record",
    ),
    "pass symbol printed in the answer": (
        notebook([PASS_PRINTED + "\n" + s for s in STUBS]),
        "not implemented",
    ),
    "check cells deleted, outputs typed": (notebook(STUBS, check_cells=False), "not implemented"),
    "sys.exit() before the checks": (
        notebook(["import sys\nsys.exit()\n" + s for s in STUBS]),
        "no record",
    ),
    "os._exit() before the checks": (
        notebook(["import os\nos._exit(0)\n" + s for s in STUBS]),
        "no record",
    ),
    "allclose patched, wrong answers": (notebook([ALLCLOSE + w for w in WRONG]), "failed"),
    "reference imported from the package": (
        notebook(
            [
                "from attention_book.attention import softmax",
                "from attention_book.attention import causal_mask",
            ]
        ),
        "uses the reference",
    ),
    "reference called through the page's import": (
        notebook(
            [
                "def softmax(x, dim=-1):\n    return attention.softmax(x, dim=dim)",
                "causal_mask = attention.causal_mask",
            ]
        ),
        "uses the reference",
    ),
}
# the typed outputs of the notebook without check cells
_typed = FORGERIES["check cells deleted, outputs typed"][0]
_typed.cells[1].outputs = [
    nbformat.v4.new_output("stream", name="stdout", text="✓ softmax passes all 7 checks.\n")
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grade the honest, stub and forged notebooks, two at a time, once for all tests."""
    folder = tmp_path_factory.mktemp("grading")
    lab_path = folder / "lab.ipynb"
    nbformat.write(notebook(STUBS), lab_path)
    cases = {
        "honest": notebook(HONEST),
        "honest, with every trick in extra cells": notebook(
            HONEST, extra=REPLACE_CHECKERS + "\n" + ALLCLOSE + PASS_PRINTED
        ),
        "stub": notebook(STUBS),
        **{name: nb for name, (nb, _) in FORGERIES.items()},
    }
    paths = {}
    for i, (name, nb) in enumerate(cases.items()):
        paths[name] = folder / f"submission-{i}.ipynb"
        nbformat.write(nb, paths[name])
    with ThreadPoolExecutor(2) as pool:
        rows = pool.map(lambda p: grade_labs.grade(p, lab_path, timeout=120), paths.values())
        return dict(zip(paths, rows, strict=True))


@pytest.mark.parametrize("case", ["honest", "honest, with every trick in extra cells"])
def test_honest_answers_get_full_marks(graded, case):
    assert [status for _, status, _ in graded[case]] == ["passed", "passed"], graded[case]


def test_the_stub_gets_zero(graded):
    assert [s for _, s, _ in graded["stub"]] == ["not implemented"] * 2


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_each_forgery_gets_zero_and_is_named(graded, forgery):
    rows = graded[forgery]
    assert [checker for checker, _, _ in rows] == ["check_softmax", "check_causal_mask"]
    assert [status for _, status, _ in rows] == [FORGERIES[forgery][1]] * 2, rows


def test_a_dead_kernel_is_reported(graded):
    assert all(
        "the kernel died" in feedback for _, _, feedback in graded["os._exit() before the checks"]
    )


def test_answers_are_matched_by_cell_id_then_order():
    lab = notebook(STUBS)
    moved = notebook(HONEST)
    moved.cells = [moved.cells[0], moved.cells[4], moved.cells[3], moved.cells[1], moved.cells[2]]
    assert grade_labs.answers(lab, moved) == HONEST  # by id, whatever the order
    for cell in moved.cells:
        cell.id = nbformat.v4.new_code_cell("").id  # Colab, say, gave new ids
    assert grade_labs.answers(lab, moved) == HONEST[::-1]  # in order, as handed in
    moved.cells = moved.cells[:3]  # one answer cell left: it fills the first slot
    assert grade_labs.answers(lab, moved) == [HONEST[1], STUBS[1]]


@pytest.mark.parametrize(
    ("code", "taken"),
    [
        ("from attention_book.attention import softmax", {"softmax"}),
        ("from attention_book.attention import softmax as mine", {"softmax"}),
        ("from attention_book.attention import *", {"softmax", "causal_mask"}),
        ("import attention_book as ab\nsoftmax = ab.attention.softmax", {"softmax"}),
        (
            "import attention_book.attention\nf = attention_book.attention.causal_mask",
            {"causal_mask"},
        ),
        ("m = __import__('attention_book.attention')\nf = getattr(m, 'softmax')", {"softmax"}),
        ("from attention_book.attention import padding_mask\ndef softmax(x):\n    return x", set()),
        ("# attention_book.attention.softmax would do it\ndef softmax(x):\n    return x", set()),
        ("def softmax(x):\n    return torch.softmax(x, -1)", set()),
        ("def f(x:\n", set()),
    ],
)
def test_references_finds_what_a_cell_takes_from_the_package(code, taken):
    assert grade_labs.references(code, {"softmax", "causal_mask"}) == taken


def test_a_real_lab_reference_full_marks_stub_zero(tmp_path):
    """The book's page, handed in as the lab's answer, passes every check of the real lab."""
    source = ROOT / "book" / "02_math" / "04_attention_masks.md"
    lab = build_notebooks.lab_path(source)
    page = build_notebooks.notebook_path(source)
    submission = tmp_path / lab.name
    submission.write_bytes(page.read_bytes())
    assert [s for _, s, _ in grade_labs.grade(submission)] == ["passed", "passed"]
    submission.write_bytes(lab.read_bytes())
    assert {s for _, s, _ in grade_labs.grade(submission)} == {"not implemented"}


# --- checks.verified: the hidden test of the otter and nbgrader assignments ----------------


def _softmax(x, dim=-1):
    e = (x - x.amax(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)


def _identity(x, dim=-1):
    return x


def test_verified_passes_an_honest_answer_only(monkeypatch):
    import numpy as np
    import torch

    from attention_book import checks
    from attention_book.attention import softmax as reference

    assert checks.verified("check_softmax", _softmax, "softmax")
    assert not checks.verified("check_softmax", _identity, "softmax")
    assert not checks.verified("check_softmax", reference, "softmax")  # the package's own
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    assert not checks.verified("check_softmax", _identity, "softmax")  # judged elsewhere
    monkeypatch.setattr(checks, "check_softmax", lambda fn: print("✓ passes") or True)
    assert not checks.verified("check_softmax", _softmax, "softmax")  # no record: not the book's


def test_judging_is_safe_from_several_threads(tmp_path, monkeypatch):
    """The grader judges in threads (two notebooks at a time): replays must not mix."""
    import json

    from attention_book import checks
    from attention_book.checks import _record

    record = tmp_path / "record.jsonl"
    monkeypatch.setenv(_record.ENV, str(record))
    with _record.graded("right"):
        checks.check_softmax(_softmax)
    with _record.graded("wrong"):
        checks.check_softmax(_identity)
    events = _record.read(record)
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(
            pool.map(
                lambda n: _record.judge("check_softmax", "softmax", events[n])[0],
                ["right", "wrong"] * 20,
            )
        )
    assert verdicts == ["passed", "failed"] * 20
    assert json.dumps(verdicts)  # plain strings
