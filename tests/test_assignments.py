"""``assignments/``: otter-grader and nbgrader assignments made from the pages, run by the tools.

``otter assign`` and ``nbgrader generate_assignment`` build the student versions; ``otter run``
and ``nbgrader autograde`` grade the filled-in reference at full marks and the untouched
student version at zero. No hidden test and no solution line reaches a student.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import assignments  # noqa: E402

import labs  # noqa: E402

otter_assign = pytest.importorskip("otter.assign")
nbgrader_api = pytest.importorskip("nbgrader.api")

BIN = Path(sys.executable).parent  # otter, nbgrader and alembic live beside this Python
PAGE = ROOT / "book" / "02_math" / "04_attention_masks.md"  # two checked exercises, one written
TARGETS = assignments.targets()


def _solution_lines(source: Path) -> set[str]:
    """Lines of the page's solutions that appear nowhere else on the page."""
    text = source.read_text(encoding="utf-8")
    lines: set[str] = set()
    for item in assignments.parse(assignments._front_matter(text)[1]):
        if isinstance(item, assignments.Exercise):
            for code in item.code:
                stub = set(labs.stub_solution(code).splitlines())
                lines |= {ln.strip() for ln in code.splitlines() if ln not in stub}
    outside = "\n".join("\n".join(b) for _, b in labs._blocks(labs.to_lab(text).splitlines()))
    taught = {ln.strip() for ln in outside.splitlines()}
    return {ln for ln in lines - taught if len(ln) > 8 and not ln.startswith("#")}


@pytest.mark.parametrize("path", sorted(TARGETS), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_assignment_is_up_to_date(path):
    assert path.read_text(encoding="utf-8") == assignments.render(TARGETS[path]), (
        f"{path.relative_to(ROOT)} is stale: run `make assignments`"
    )


def test_every_page_with_exercises_has_both_assignments():
    pages = assignments.sources()
    assert len(pages) >= 40
    otter = {p for p in TARGETS if assignments.OTTER in p.parents}
    nbgrader = {p for p in TARGETS if assignments.NBGRADER in p.parents}
    assert len(otter) == len(nbgrader) == len(pages)


def test_every_checked_exercise_is_an_autograded_question():
    for source in assignments.sources():
        items = assignments.parse(source.read_text(encoding="utf-8"))
        master = assignments.otter_master(source)
        text = "\n".join(cell.source for cell in master.cells)
        for item in items:
            if isinstance(item, assignments.Exercise):
                assert f"name: {item.label}\n" in text + "\n"
                if item.checked:
                    checker = assignments.CHECK.search(item.check).group(1)
                    assert f"checks.verified('{checker}'" in text, (source, item.label)
                else:
                    assert f"name: {item.label}\npoints: 1\nmanual: true" in text


def test_otter_assign_accepts_every_master_and_hides_what_it_must(tmp_path):
    """Every master goes through otter assign; no student version has a hidden test or a
    solution line."""
    shutil.copy(assignments.OTTER / "requirements.txt", tmp_path / "requirements.txt")
    for source in assignments.sources():
        folder = tmp_path / source.parent.name
        folder.mkdir(exist_ok=True)
        master = folder / f"{source.stem}.ipynb"
        shutil.copy(assignments.OTTER / source.parent.name / master.name, master)
        dist = folder / f"{source.stem}-dist"
        with contextlib.redirect_stdout(io.StringIO()):
            otter_assign.main(str(master), str(dist), no_pdfs=True, no_run_tests=True)
        student = (dist / "student" / master.name).read_text(encoding="utf-8")
        assert "verified" not in student and "BEGIN SOLUTION" not in student
        code = {
            line.strip()
            for c in nbformat.reads(student, 4).cells
            if c.cell_type == "code"
            for line in c.source.splitlines()
        }
        leaks = _solution_lines(source) & code
        assert not leaks, f"{source.name}: solution lines in the student version: {leaks}"


def _code_lines(notebook: Path) -> set[str]:
    cells = nbformat.read(notebook, 4).cells
    return {ln.strip() for c in cells if c.cell_type == "code" for ln in c.source.splitlines()}


def _otter(tmp_path: Path) -> dict[str, float]:
    folder = tmp_path / "otter"
    folder.mkdir()
    shutil.copy(assignments.OTTER / "requirements.txt", tmp_path / "requirements.txt")
    master = folder / f"{PAGE.stem}.ipynb"
    shutil.copy(assignments.OTTER / PAGE.parent.name / master.name, master)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [BIN / "otter", "assign", master.name, "dist"],
        cwd=folder,
        env=env,
        check=True,
        capture_output=True,
    )
    (zip_file,) = (folder / "dist" / "autograder").glob("*.zip")
    scores = {}
    for who, notebook in [
        ("reference", folder / "dist" / "autograder" / master.name),
        ("student", folder / "dist" / "student" / master.name),
    ]:
        out = folder / who
        out.mkdir()
        subprocess.run(
            [BIN / "otter", "run", "-a", zip_file, "-o", out, notebook],
            cwd=folder,
            env=env,
            check=True,
            capture_output=True,
        )
        results = json.loads((out / "results.json").read_text())
        scores[who] = sum(t.get("score", 0) or 0 for t in results["tests"])
        scores[f"{who} max"] = sum(t.get("max_score", 0) or 0 for t in results["tests"])
    scores["hidden in student"] = float(
        "verified" in (folder / "dist" / "student" / master.name).read_text()
    )
    return scores


def _nbgrader(tmp_path: Path) -> dict[str, float]:
    course = tmp_path / "course"
    name = f"{PAGE.parent.name}-{PAGE.stem}"
    shutil.copytree(assignments.NBGRADER / name, course / "source" / name)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        "c.CourseDirectory.course_id = 'paying-attention'\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{course}/gradebook.db'\n"
        "c.Execute.timeout = 300\n"
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    def nbgrader(*args: str) -> None:
        subprocess.run(
            [BIN / "nbgrader", *args], cwd=course, env=env, check=True, capture_output=True
        )

    nbgrader("generate_assignment", name, "--create")
    released = course / "release" / name / f"{name}.ipynb"
    for student, notebook in [
        ("reference", course / "source" / name / released.name),
        ("stub", released),
    ]:
        (course / "submitted" / student / name).mkdir(parents=True)
        shutil.copy(notebook, course / "submitted" / student / name / released.name)
    nbgrader("autograde", name, "--create")
    scores = {}
    with nbgrader_api.Gradebook(f"sqlite:///{course}/gradebook.db") as gradebook:
        for student in ("reference", "stub"):
            submission = gradebook.find_submission(name, student)
            auto = [g for nb in submission.notebooks for g in nb.grades if g.auto_score is not None]
            scores[student] = sum(g.auto_score for g in auto)
            scores[f"{student} max"] = sum(g.max_score for g in auto)
    text = released.read_text()
    scores["solution in release"] = float(
        "BEGIN SOLUTION" in text
        or "verified" in text
        or bool(_solution_lines(PAGE) & _code_lines(released))
    )
    return scores


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Run otter and nbgrader on page 2.4's assignment, side by side."""
    with ThreadPoolExecutor(2) as pool:
        otter = pool.submit(_otter, tmp_path_factory.mktemp("otter"))
        nbgrader = pool.submit(_nbgrader, tmp_path_factory.mktemp("nbgrader"))
        return {"otter": otter.result(), "nbgrader": nbgrader.result()}


def test_otter_run_grades_reference_full_and_student_zero(graded):
    scores = graded["otter"]
    assert scores["reference max"] == 2
    assert scores["reference"] == 2 and scores["student"] == 0
    assert scores["hidden in student"] == 0


def test_nbgrader_autograde_grades_reference_full_and_stub_zero(graded):
    scores = graded["nbgrader"]
    assert scores["reference max"] == 2
    assert scores["reference"] == 2 and scores["stub"] == 0
    assert scores["solution in release"] == 0


@pytest.mark.parametrize(
    ("code", "marked"),
    [
        (
            'def f(x):\n    """Doc."""\n    # Hint: add one\n    # to x.\n    return x + 1\n',
            'def f(x):\n    """Doc."""\n    # Hint: add one\n    # to x.\n'
            "    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION",
        ),
        (
            "# Hint: print it.\ny = 2\nprint(y)\n",
            "# Hint: print it.\n### BEGIN SOLUTION\ny = 2\nprint(y)\n### END SOLUTION",
        ),
        (
            "import math\n\n\nclass A:\n    size = 3\n\n    def g(self):\n        return 1\n",
            "import math\n\n\nclass A:\n    size = 3\n\n    def g(self):\n"
            "        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION",
        ),
    ],
)
def test_nbgrader_markers_keep_signatures_and_hints(code, marked):
    assert assignments.nbgrader_solution(code) == marked
