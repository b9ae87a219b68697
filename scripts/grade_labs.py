"""Grade students' lab notebooks with the book's checkers.

    python scripts/grade_labs.py submissions/*.ipynb            # a table on the screen
    python scripts/grade_labs.py submissions/*.ipynb --csv grades.csv

Each notebook is executed from top to bottom in a fresh kernel (errors do not stop it), and
every cell that calls a ``checks.check_*`` function is read: passed, failed or not
implemented. Run it in the environment the labs run in (``make env`` makes one).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CHECK_CALL = re.compile(r"checks\.(check_\w+)\(")
STATUS = {"✓": "passed", "✗": "failed", "…": "not implemented"}


def results(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """Return ``(checker, status)`` for every check cell of an executed notebook."""
    found = []
    for cell in nb.cells:
        match = CHECK_CALL.search(cell.source) if cell.cell_type == "code" else None
        if not match:
            continue
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if "text" in o)
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        status = STATUS.get(text.strip()[:1], "error" if errors else "not run")
        found.append((match.group(1), status))
    return found


def execute(path: Path, timeout: int) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--csv", type=Path, help="also write the grades to this CSV file")
    parser.add_argument("--timeout", type=int, default=300, help="seconds a cell may take")
    args = parser.parse_args(argv)
    rows = []
    for path in args.notebooks:
        graded = results(execute(path, args.timeout))
        passed = sum(status == "passed" for _, status in graded)
        print(f"{path}: {passed}/{len(graded)} checks passed")
        for checker, status in graded:
            print(f"    {checker:40s} {status}")
            rows.append({"notebook": str(path), "check": checker, "status": status})
    if args.csv:
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["notebook", "check", "status"])
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
