"""Grade students' lab notebooks so that a notebook cannot grade itself.

    python scripts/grade_labs.py submissions/*.ipynb            # a table on the screen
    python scripts/grade_labs.py submissions/*.ipynb --csv grades.csv
    python scripts/grade_labs.py work.ipynb --lab notebooks/labs/02_math/02_softmax.ipynb

For each submission:

1. **Only the answers are taken.** The cells tagged ``solution`` (matched to the lab's by cell
   id, or else in order) are copied into a fresh copy of the book's own lab, from
   ``notebooks/labs``. Every other cell, the check cells included, comes from the book: a cell
   the student added, deleted or edited, and any output they typed, is ignored.
2. **An answer may not be the book's own.** A check gets zero when a solution cell takes the
   function it checks from ``attention_book``, which holds the reference solutions (helpers
   the exercise does not ask for are fine).
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
import ast
import csv
import json
import os
import secrets
import sys
import tempfile
import textwrap
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from attention_book.checks import _record

from labs import CHECK_CALL

ROOT = Path(__file__).resolve().parent.parent
LABS = ROOT / "notebooks" / "labs"


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


def references(code: str, names: set[str]) -> set[str]:
    """The checked ``names`` that code takes from the book's package instead of writing them.

    ``from attention_book.x import softmax``, ``import attention_book as ab`` then
    ``ab.x.softmax``, and ``__import__("attention_book...")`` with ``"softmax"`` in the cell all
    count; taking a helper the exercise does not ask for (``padding_mask``, say) does not.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return {n for n in names if n in code} if "attention_book" in code else set()
    found: set[str] = set()
    roots: set[str] = set()  # names bound to the package or one of its modules
    dynamic = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("attention_book"):
            for alias in node.names:
                found |= names if alias.name == "*" else {alias.name} & names
                roots.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("attention_book"):
                    roots.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            dynamic |= "attention_book" in node.value
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if dynamic or (isinstance(root, ast.Name) and root.id in roots):
                found.add(node.attr)
        elif dynamic and isinstance(node, ast.Constant) and node.value in names:
            found.add(str(node.value))
    return found


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
        if cell.cell_type == "code":  # the book's outputs are not the student's
            cell.outputs, cell.execution_count = [], None
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
    nb, wrapped = graded_notebook(lab, code)
    taken = set().union(*(references(c, {arg for _, _, arg in wrapped}) for c in code))
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "record.jsonl"
        stopped = execute(nb, lab_path.parent, record, timeout)
        events = _record.read(record)
    rows = []
    for nonce, checker, argument in wrapped:
        if argument in taken:
            rows.append((checker, "uses the reference", f"{argument} comes from attention_book"))
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
