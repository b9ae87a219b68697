"""Write the chapter pages' exercises as otter-grader and nbgrader assignments.

    python scripts/assignments.py            # writes assignments/otter and assignments/nbgrader
    python scripts/assignments.py --check    # exit 1 when a written notebook is stale

From each page's MyST source, the same one the book's pages and labs come from:

- ``assignments/otter/<chapter>/<page>.ipynb``: an otter-grader master notebook in otter's v1
  format (``# ASSIGNMENT CONFIG``, ``# BEGIN QUESTION``, prompt and solution markers,
  ``# BEGIN TESTS``). An exercise with a checker is an autograded question: its public test
  is the checker, which gives the student feedback and no points; its hidden test,
  ``checks.verified``, judges the same check in a fresh Python and carries the point. An
  exercise without one is a manually graded question, its worked solution the answer key.
- ``assignments/nbgrader/source/<page>/<page>.ipynb``: an nbgrader source notebook with
  ``### BEGIN SOLUTION`` markers inside each function's body, and one autograder test cell
  per checked exercise (1 point), whose ``checks.verified`` line is a hidden test.

Nothing is executed: ``otter assign`` and ``nbgrader generate_assignment`` make the student
versions (see the instructors' guide).
"""

from __future__ import annotations

import argparse
import ast
import builtins
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat

import build_notebooks
import labs

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "assignments"
OTTER = OUT / "otter"
NBGRADER = OUT / "nbgrader" / "source"
CHECK = labs.CHECK_CALL
REPOSITORY = "https://github.com/paying-attention/paying-attention"


@dataclass
class Exercise:
    """One ``{exercise}`` of a page, with its solution and the check cell after it."""

    label: str
    prompt: list[str]
    code: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    check: str | None = None

    @property
    def checked(self) -> bool:
        return self.check is not None and CHECK.search(self.check) is not None


Item = list[str] | Exercise


def _front_matter(text: str) -> tuple[str, str]:
    match = re.match(r"^---\n.*?\n---\n", text, flags=re.S)
    return (match.group(0), text[match.end() :]) if match else ("", text)


def parse(text: str) -> list[Item]:
    """A page as plain MyST blocks and exercises, in order."""
    items: list[Item] = []
    current: Exercise | None = None
    in_solution = False
    number = 0
    for name, block in labs._blocks(text.splitlines()):
        if name == "exercise":
            number += 1
            label = next(
                (ln.split(":", 2)[2].strip() for ln in block if ln.startswith(":label:")),
                f"exercise-{number}",
            )
            current = Exercise(label, labs._exercise_markdown(block, number))
            items.append(current)
        elif name == "solution-start":
            in_solution = True
        elif name == "solution-end":
            in_solution = False
        elif in_solution and current is not None:
            if name == "code-cell":
                current.code.append("\n".join(labs._split_code_cell(block)[1]))
            elif "\n".join(block).strip():
                current.text.append("\n".join(block).strip())
        elif (
            name == "code-cell"
            and current is not None
            and current.check is None
            and "checks.check_" in "\n".join(block)
        ):
            current.check = "\n".join(labs._split_code_cell(block)[1]).strip()
        else:
            if name is not None:  # a cell or directive other than the check ends the exercise
                current = None
            items.append(block)
    return items


def _fence(name: str, body: str, header: str = "") -> list[str]:
    return [f"```{{{name}}}{header}", body.rstrip("\n"), "```", ""]


def _raw(body: str) -> list[str]:
    return _fence("raw-cell", body)


def _code(body: str) -> list[str]:
    return _fence("code-cell", body, " ipython3")


def _env_names(code: str) -> str:
    """Code whose free names (not builtins, not ``checks``) are read from ``env``."""
    tree = ast.parse(code)
    bound = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }

    class ToEnv(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            keep = node.id in bound or node.id == "checks" or hasattr(builtins, node.id)
            if keep or not isinstance(node.ctx, ast.Load):
                return node
            return ast.copy_location(
                ast.Subscript(ast.Name("env", ast.Load()), ast.Constant(node.id), ast.Load()),
                node,
            )

    body = [s for s in tree.body if not isinstance(s, (ast.Import, ast.ImportFrom))]
    return ast.unparse(ast.fix_missing_locations(ToEnv().visit(ast.Module(body, []))))


def _asserted(check: str) -> str:
    """The check cell with its checker call asserted (``passed = ...`` becomes ``assert``)."""
    return re.sub(r"passed\s*=\s*checks\.", "assert checks.", check)


def _verified(check: str) -> str:
    """The check cell with ``checks.check_x(f)`` judged in a fresh Python instead."""
    return CHECK.sub(  # the call's closing bracket stays where it was
        lambda m: f'checks.verified("{m.group(1)}", {m.group(2)}, "{m.group(2)}"',
        _asserted(check),
    )


def _otter_test(name: str, code: str, hidden: bool) -> str:
    config = f'""" # BEGIN TEST CONFIG\nhidden: {str(hidden).lower()}\npoints: {int(hidden)}\n'
    if not hidden:
        config += "success_message: the checker's properties hold\n"
    config += '""" # END TEST CONFIG\n'
    body = _env_names(code)
    indented = "\n".join("    " + line for line in body.splitlines())
    return (
        f"{config}def {name}(env):\n    from attention_book import checks\n\n"
        f"{indented}\n\n\n{name}(globals())"
    )


def otter_master(source: Path) -> nbformat.NotebookNode:
    """The otter-grader master notebook (v1 format) of one page."""
    front, body = _front_matter(source.read_text(encoding="utf-8"))
    name = f"{source.parent.name}-{source.stem}"
    config = (
        "# ASSIGNMENT CONFIG\n"
        f"name: {name}\n"
        "requirements: ../requirements.txt\n"
        "init_cell: true\n"
        "check_all_cell: false\n"
        "export_cell: false\n"
        "run_tests: false\n"
        "solutions_pdf: false\n"
        "template_pdf: false\n"
        "generate:\n"
        "  pdf: false\n"
        "tests:\n"
        "  files: false\n"
        "  ok_format: false"
    )
    out: list[str] = [*_raw(config)]
    for item in parse(body):
        if not isinstance(item, Exercise):
            out += item
            continue
        manual = "" if item.checked else "manual: true\n"
        out += _raw(f"# BEGIN QUESTION\nname: {item.label}\npoints: 1\n{manual}".rstrip())
        out += [*item.prompt, ""]
        out += _raw("# BEGIN SOLUTION")
        for code in item.code:  # the student sees the lab's stub, the grader the solution
            stub = labs.stub_solution(code)
            out += _code(
                f"# BEGIN PROMPT\n{stub}\n# END PROMPT\n"
                f"# BEGIN SOLUTION NO PROMPT\n{code}\n# END SOLUTION"
            )
        if item.text:
            out += ["+++", "", "\n\n".join(item.text), "", "+++", ""]
        out += _raw("# END SOLUTION")
        if item.checked:
            assert item.check is not None
            out += _raw("# BEGIN TESTS")
            out += _code(_otter_test("test_checker", _asserted(item.check), hidden=False))
            out += _code(_otter_test("test_verified", _verified(item.check), hidden=True))
            out += _raw("# END TESTS")
        out += _raw("# END QUESTION")
    nb = jupytext.reads(front + "\n".join(out) + "\n", fmt="md:myst")
    return _tidy(nb)


# --- nbgrader ------------------------------------------------------------------------------


def _split_hints(lines: list[str]) -> tuple[list[str], list[str]]:
    """(the hint comments with their continuation lines, every other line)."""
    hints = labs._hints(lines)
    rest, used = [], list(hints)
    for line in lines:
        if used and line == used[0]:
            used.pop(0)
        else:
            rest.append(line)
    return hints, rest


def _marked_body(lines: list[str], node: ast.FunctionDef) -> list[str]:
    """A function's lines with its body (after the docstring) between nbgrader markers."""
    start_line = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    docstring = ast.get_docstring(node, clean=False) is not None
    statements = node.body[1:] if docstring else node.body
    if not statements:
        return lines[start_line - 1 : node.end_lineno]
    if docstring:
        start = node.body[0].end_lineno or node.lineno
    else:  # the body starts at its first statement, or the comments just above it
        start = statements[0].lineno - 1
        while start > node.lineno and lines[start - 1].strip().startswith("#"):
            start -= 1
    hints, code = _split_hints(lines[start : node.end_lineno])
    indent = " " * statements[0].col_offset
    return [
        *lines[start_line - 1 : start],
        *hints,
        f"{indent}### BEGIN SOLUTION",
        *code,
        f"{indent}### END SOLUTION",
    ]


def nbgrader_solution(code: str) -> str:
    """A solution cell with markers around what the student writes, signatures kept."""
    lines = code.splitlines()
    out: list[str] = []
    free: list[str] = []

    def flush() -> None:
        if any(line.strip() for line in free):
            hints, rest = _split_hints(free)
            out.extend([*hints, "### BEGIN SOLUTION", *rest, "### END SOLUTION"])
        free.clear()

    cursor = 0
    for stmt in ast.parse(code).body:
        first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
        before, chunk = lines[cursor : first - 1], lines[first - 1 : stmt.end_lineno]
        cursor = stmt.end_lineno or stmt.lineno
        if isinstance(stmt, (ast.Import, ast.ImportFrom)) and not free:
            out += before + chunk
        elif isinstance(stmt, ast.FunctionDef):
            flush()
            out += [*before, *_marked_body(lines, stmt)]
        elif isinstance(stmt, ast.ClassDef):
            flush()
            out += before
            position = first - 1
            for member in stmt.body:
                if isinstance(member, ast.FunctionDef):
                    start = min([member.lineno, *(d.lineno for d in member.decorator_list)])
                    out += lines[position : start - 1]
                    out += _marked_body(lines, member)
                    position = member.end_lineno or member.lineno
            out += lines[position : stmt.end_lineno]
        else:
            free += before + chunk
    free += lines[cursor:]
    flush()
    if not any("### BEGIN SOLUTION" in line for line in out):  # nothing to write: all of it
        out = ["### BEGIN SOLUTION", *lines, "### END SOLUTION"]
    return "\n".join(out)


def _nbgrader(cell: nbformat.NotebookNode, grade_id: str, **flags: object) -> None:
    meta = {"grade": False, "locked": False, "solution": False, "task": False}
    meta |= {"grade_id": grade_id, "schema_version": 3} | flags
    cell.metadata["nbgrader"] = meta


def nbgrader_source(source: Path) -> nbformat.NotebookNode:
    """The nbgrader source notebook of one page."""
    front, body = _front_matter(source.read_text(encoding="utf-8"))
    out: list[str] = []
    marks: list[tuple[str, dict[str, object]]] = []  # (grade_id, flags) of each marked cell
    written: dict[str, str] = {}  # grade_id -> the written solution's text

    for item in parse(body):
        if not isinstance(item, Exercise):
            out += item
            continue
        out += ["+++", "", *item.prompt, ""]
        for i, code in enumerate(item.code):
            marks.append((f"{item.label}-answer-{i + 1}", {"solution": True}))
            out += _code(nbgrader_solution(code))
        if not item.checked and item.text:
            marks.append((f"{item.label}-written", {"solution": True, "grade": True, "points": 1}))
            written[f"{item.label}-written"] = "\n\n".join(item.text).strip()
            out += ["+++", "", "\n\n".join(item.text), "", "+++", ""]
        if item.checked:
            assert item.check is not None
            test = (
                f"{_asserted(item.check)}\n### BEGIN HIDDEN TESTS\n"
                f"{_verified(item.check).split(chr(10) * 2)[-1]}\n### END HIDDEN TESTS"
            )
            marks.append((f"{item.label}-tests", {"grade": True, "points": 1, "locked": True}))
            out += _code(test)
    nb = jupytext.reads(front + "\n".join(out) + "\n", fmt="md:myst")
    queue = iter(marks)
    pending = next(queue, None)
    for cell in nb.cells:
        if pending is None:
            break
        grade_id, flags = pending
        is_answer = cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source
        is_written = cell.cell_type == "markdown" and cell.source.strip() == written.get(grade_id)
        is_test = cell.cell_type == "code" and "BEGIN HIDDEN TESTS" in cell.source
        kind = "tests" if flags.get("locked") else ("written" if flags.get("grade") else "answer")
        if {"answer": is_answer, "written": is_written, "tests": is_test}[kind]:
            _nbgrader(cell, grade_id, **flags)
            pending = next(queue, None)
    assert pending is None, f"{source}: a marked cell was not found"
    return _tidy(nb)


def _tidy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.metadata.pop("jupytext", None)
    nb.metadata.pop("attention_book", None)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"
    return nb


# --- writing -------------------------------------------------------------------------------


def sources() -> list[Path]:
    """The chapter pages that have exercises."""
    return [
        s
        for s in build_notebooks.chapter_sources()
        if "```{exercise}" in s.read_text(encoding="utf-8")
    ]


def targets() -> dict[Path, nbformat.NotebookNode]:
    written = {}
    for source in sources():
        written[OTTER / source.parent.name / f"{source.stem}.ipynb"] = otter_master(source)
        folder = f"{source.parent.name}-{source.stem}"
        written[NBGRADER / folder / f"{folder}.ipynb"] = nbgrader_source(source)
    return written


def render(nb: nbformat.NotebookNode) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


REQUIREMENTS = f"""\
# What an otter-grader autograder (Gradescope's, say) installs to run the book's labs.
attention-book @ git+{REPOSITORY}
myst-nb
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale notebooks")
    args = parser.parse_args(argv)
    texts = {path: render(nb) for path, nb in targets().items()}
    texts[OTTER / "requirements.txt"] = REQUIREMENTS
    stale = [p for p, t in texts.items() if not p.exists() or p.read_text(encoding="utf-8") != t]
    if not args.check:
        for path in stale:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(texts[path], encoding="utf-8")
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
