"""Grade students' lab notebooks so that a notebook cannot grade itself.

    python scripts/grade_labs.py submissions/*.ipynb            # a table on the screen
    python scripts/grade_labs.py submissions/*.ipynb --csv grades.csv
    python scripts/grade_labs.py work.ipynb --lab notebooks/labs/02_math/02_softmax.ipynb

For each submission:

1. **Only the answers are taken.** The cells tagged ``solution`` (matched to the lab's by cell
   id, or else in order) are copied into a fresh copy of the book's own lab, from
   ``notebooks/labs``. Every other cell, the check cells included, comes from the book: a cell
   the student added, deleted or edited, and any output they typed, is ignored.
2. **The answers may not import the book's package.** A solution cell that names
   ``attention_book`` gets zero for the lab's checks, since the package holds the reference
   solutions.
3. **The checks are recorded, not judged, in the student's kernel.** The lab runs in a fresh
   kernel with each check cell wrapped in ``_record.graded``: every call the checker makes to
   the student's code is written down as data (tensors, numbers, errors).
4. **The checks are judged here.** Each checker runs again in this process, answered from the
   record (``_record.replaying``), so its comparisons use this process's NumPy and PyTorch,
   which the student's code never touched. A check whose record is missing (the notebook
   stopped, or the checker was replaced) fails; so does one whose answer ran the package's own
   function of the same name.

Each check is reported as *passed*, *failed*, *not implemented*, *no record* or *uses the
reference*. Run it in the environment the labs run in (``make env`` makes one).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import secrets
import sys
import tempfile
import textwrap
import tokenize
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from attention_book.checks import _record

ROOT = Path(__file__).resolve().parent.parent
LABS = ROOT / "notebooks" / "labs"
CHECK_CALL = re.compile(r"checks\.(check_\w+)\((\w+)")


def find_lab(submission: Path) -> Path:
    """The book's lab of the same file name."""
    found = sorted(LABS.glob(f"*/{submission.name}"))
    if len(found) != 1:
        raise SystemExit(
            f"{submission}: no lab in {LABS} is named {submission.name!r}; say which with --lab"
        )
    return found[0]


def _is_solution(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and "solution" in cell.metadata.get("tags", [])


def answers(lab: nbformat.NotebookNode, submission: nbformat.NotebookNode) -> list[str]:
    """The student's code for each of the lab's solution cells (the stub where none)."""
    slots = [cell for cell in lab.cells if _is_solution(cell)]
    theirs = [cell for cell in submission.cells if _is_solution(cell)]
    by_id = {cell.get("id"): cell.source for cell in theirs if cell.get("id")}
    if all(slot.get("id") in by_id for slot in slots):
        return [by_id[slot.get("id")] for slot in slots]
    if len(theirs) == len(slots):
        return [cell.source for cell in theirs]
    return [
        by_id.get(slot.get("id"), theirs[i].source if i < len(theirs) else slot.source)
        for i, slot in enumerate(slots)
    ]


def names_the_package(code: str) -> bool:
    """True when code (comments aside) names ``attention_book``, in an import or a string."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return "attention_book" in code
    return any(
        t.type in (tokenize.NAME, tokenize.STRING) and "attention_book" in t.string for t in tokens
    )


def graded_notebook(
    lab: nbformat.NotebookNode, code: list[str]
) -> tuple[nbformat.NotebookNode, list[tuple[str, str, str]]]:
    """The book's lab with the student's answers in, and each check cell wrapped.

    Returns the notebook and, for each check cell in order, ``(nonce, checker, argument)``.
    """
    nb = nbformat.from_dict(json.loads(json.dumps(lab)))  # a deep copy
    answers_left = iter(code)
    wrapped = []
    for cell in nb.cells:
        if _is_solution(cell):
            cell.source = next(answers_left)
        elif cell.cell_type == "code" and CHECK_CALL.search(cell.source):
            nonce = secrets.token_hex(16)
            checker, argument = CHECK_CALL.search(cell.source).groups()  # type: ignore[union-attr]
            cell.source = (
                "from attention_book.checks import _record as _grading_record\n\n"
                f'with _grading_record.graded("{nonce}"):\n' + textwrap.indent(cell.source, "    ")
            )
            wrapped.append((nonce, checker, argument))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.pop("outputs", None)
            cell.outputs = []
            cell.execution_count = None
    return nb, wrapped


def execute(nb: nbformat.NotebookNode, folder: Path, record: Path, timeout: int) -> str:
    """Run the notebook in a fresh kernel that records its checks; '' or why it stopped."""
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(folder)}},
    )
    try:
        client.execute(env={**os.environ, _record.ENV: str(record)})
    except DeadKernelError:
        return "the kernel died"
    except Exception as error:  # a cell over the time limit, for example
        return f"{type(error).__name__}: {error}"
    return ""


def grade(
    submission: Path, lab_path: Path | None = None, timeout: int = 300
) -> list[tuple[str, str, str]]:
    """Grade one submission: ``(checker, status, feedback)`` for each of the lab's checks."""
    lab_path = lab_path or find_lab(submission)
    lab = nbformat.read(lab_path, as_version=4)
    code = answers(lab, nbformat.read(submission, as_version=4))
    forbidden = any(names_the_package(c) for c in code)
    nb, wrapped = graded_notebook(lab, code)
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "record.jsonl"
        stopped = execute(nb, lab_path.parent, record, timeout)
        events = _record.read(record)
    rows = []
    for nonce, checker, argument in wrapped:
        if forbidden:
            rows.append((checker, "uses the reference", "a solution cell imports attention_book"))
            continue
        status, feedback = _record.judge(checker, argument, events.get(nonce, []))
        if status == "no record" and stopped:
            feedback += f" ({stopped})"
        rows.append((checker, status, feedback))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--lab", type=Path, help="the book's lab they answer (default: by name)")
    parser.add_argument("--csv", type=Path, help="also write the grades to this CSV file")
    parser.add_argument("--timeout", type=int, default=300, help="seconds a cell may take")
    args = parser.parse_args(argv)
    rows = []
    for path in args.notebooks:
        graded = grade(path, args.lab, args.timeout)
        passed = sum(status == "passed" for _, status, _ in graded)
        print(f"{path}: {passed}/{len(graded)} checks passed")
        for checker, status, feedback in graded:
            print(f"    {checker:40s} {status}")
            if status not in ("passed", "not implemented"):
                print(textwrap.indent(feedback, " " * 8))
            rows.append(
                {"notebook": str(path), "check": checker, "status": status, "feedback": feedback}
            )
    if args.csv:
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["notebook", "check", "status", "feedback"])
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
