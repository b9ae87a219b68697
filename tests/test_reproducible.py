"""The rules that keep every page's outputs true on every reader's machine (README, "How the
book is made"): what nbval compares strictly, what it ignores, and how pages seed."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import build_notebooks  # noqa: E402

SOURCES = build_notebooks.chapter_sources()
IGNORE = "nbval-ignore-output"
# Calls whose results depend on the machine: clocks, and training (every loop in the package
# goes through attention_book.train.train; pages call it or a train_* wrapper of a model).
TIMERS = re.compile(r"\b(perf_counter|timeit|time_fn|bench\.compare|bench\.sweep)\b")
TRAINS = re.compile(r"(?<![\w.])(train|train_\w+)\(|\.train_\w+\(")
# Pages seed only through the package, so that ATTENTION_BOOK_SEED reaches every stream.
DIRECT_SEED = re.compile(r"torch\.manual_seed\(|Generator\(\)\.manual_seed\(|np\.random\.seed\(")
# A rounding residue printed as digits: an error or difference of 1e-5 or less, in digits.
RESIDUE = re.compile(
    r"(error|difference|differ|deviation|residual)\w*[^\n\d]{0,30}\d(\.\d+)?e-(0[5-9]|[1-9]\d)\b",
    re.IGNORECASE,
)


def trains(code: str) -> bool:
    """True when the cell calls a training function itself (not only inside a definition)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:  # an IPython line (%pip): no training there
        return False
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for node in ast.walk(statement):
            if isinstance(node, ast.Call) and TRAINS.search(ast.unparse(node.func) + "("):
                return True
    return False


def source_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_cells(source: Path) -> list[nbformat.NotebookNode]:
    nb = build_notebooks.read_page(source)
    return [c for c in nb.cells if c.cell_type == "code"]


def is_ignored(cell: nbformat.NotebookNode) -> bool:
    return IGNORE in cell.metadata.get("tags", [])


def shown_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def first_line(cell: nbformat.NotebookNode) -> str:
    return next((ln for ln in cell.source.splitlines() if ln.strip()), "")[:70]


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_cells_that_time_or_train_are_not_compared(source):
    """A clock or a training run differs on every machine: nbval must not compare its output."""
    compared = [
        first_line(c) for c in code_cells(source) if not is_ignored(c) and TIMERS.search(c.source)
    ]
    compared += [
        first_line(c) for c in code_cells(source) if not is_ignored(c) and trains(c.source)
    ]
    assert not compared, f"tag these cells {IGNORE} and assert their claims: {compared}"


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_pages_seed_only_through_the_package(source):
    direct = [first_line(c) for c in code_cells(source) if DIRECT_SEED.search(c.source)]
    assert not direct, (
        "use attention_book.seed_everything(seed) or make_generator(seed), which honour "
        f"ATTENTION_BOOK_SEED: {direct}"
    )


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_compared_outputs_print_no_rounding_residue(source):
    """A residue such as 1.7e-07 differs in its digits between CPUs: print a bound instead."""
    stored = nbformat.read(build_notebooks.notebook_path(source), as_version=4)
    residues = [
        (first_line(c), RESIDUE.search(shown_text(c))[0])  # type: ignore[index]
        for c in stored.cells
        if c.cell_type == "code" and not is_ignored(c) and RESIDUE.search(shown_text(c))
    ]
    assert not residues, f"print these as bounds (< 1e-6) or tag the cells {IGNORE}: {residues}"


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_pages_that_time_code_say_so(source):
    """`timing: true` keeps a page that times code away from the others under nbval."""
    timing = any(re.search(r"\b(timeit|time_fn|bench\.compare|bench\.sweep)\b", c.source)
                 for c in code_cells(source))  # fmt: skip
    says = build_notebooks.is_timing_page(source)
    assert says or not timing, "add `attention_book: {timing: true}` to its front matter"


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_ignored_cells_that_glue_a_number_assert_it(source):
    """The claim a machine-dependent cell supports is an assert with a margin.

    Timing pages are exempt: their sentences are written from the measurement (the glued
    word says "faster" or "slower"), or assert a direction where the page needs one; those are
    reviewed by hand.
    """
    if build_notebooks.is_timing_page(source):
        return
    unchecked = [
        first_line(c)
        for c in code_cells(source)
        if is_ignored(c)
        and "glue(" in c.source
        and "assert" not in c.source
        and not TIMERS.search(c.source)  # a time measured is not a claim
    ]
    assert not unchecked, f"assert what these cells glue, with a margin: {unchecked}"


def test_the_rules_are_written_down():
    readme = (ROOT / "README.md").read_text()
    for phrase in (IGNORE, "ATTENTION_BOOK_SEED", "ATEN_CPU_CAPABILITY", "make robust"):
        assert phrase in readme


def compared_share() -> tuple[int, int]:
    """(compared, with outputs): the code cells with outputs that nbval compares strictly."""
    compared = with_outputs = 0
    for source in SOURCES:
        stored = nbformat.read(build_notebooks.notebook_path(source), as_version=4)
        for cell in stored.cells:
            if cell.cell_type == "code" and cell.get("outputs"):
                with_outputs += 1
                compared += not is_ignored(cell)
    return compared, with_outputs


def test_nbval_still_compares_most_outputs():
    """Tagging is for what depends on the machine, not a way out of comparing."""
    compared, with_outputs = compared_share()
    assert compared >= 0.75 * with_outputs, f"{compared} of {with_outputs} cells compared"


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _bound(statement: ast.stmt) -> set[str]:
    """The names a statement binds or fills: ``x = ...``, ``x[k] = ...``, ``x.append(...)``."""
    names: set[str] = set()
    for node in ast.walk(statement):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.NamedExpr)):
            targets = [node.target]
        elif isinstance(node, (ast.For, ast.comprehension)):
            targets = [node.target]
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            targets = [node.optional_vars]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.attr in {"append", "extend", "update", "add", "insert"}
        ):
            names.add(node.func.value.id)
        for target in targets:
            names |= _names(target)
    return names


def glued_from_training(source: Path) -> list[str]:
    """Compared cells that glue a value computed from a training run.

    A name is trained when a statement that calls a training function binds it (or passes it
    as the first argument, the model), and so is every name later computed from one. A glued
    value is stored in the notebook as text, so nbval compares it: a trained value there
    differs between CPUs (6.5's "far-window" accuracy, 12.3 % here and 12.6 % in CI).
    """
    trained: set[str] = set()
    found = []
    for cell in code_cells(source):
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for statement in tree.body:
            if isinstance(statement, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
                continue
            calls = [n for n in ast.walk(statement) if isinstance(n, ast.Call)]
            training = [c for c in calls if TRAINS.search(ast.unparse(c.func) + "(")]
            if training:
                trained |= _bound(statement)
                trained |= {n for c in training for a in c.args[:1] for n in _names(a)}
            elif _names(statement) & trained:
                trained |= _bound(statement)
            if is_ignored(cell):
                continue
            found += [
                first_line(cell)
                for c in calls
                if isinstance(c.func, ast.Name)
                and c.func.id == "glue"
                and any(_names(a) & trained for a in c.args[1:])
            ]
    return found


@pytest.mark.parametrize("source", SOURCES, ids=source_id)
def test_compared_cells_glue_nothing_trained(source):
    found = glued_from_training(source)
    assert not found, f"glue these in a cell tagged {IGNORE}, with an assert: {found}"


def test_a_trained_value_glued_in_a_compared_cell_is_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "---\njupytext:\n  text_representation:\n    format_name: myst\n---\n# T\n\n"
        "```{code-cell} ipython3\n:tags: [nbval-ignore-output]\n"
        "history = train(model, data)\nacc = {}\nacc['a'] = evaluate(model)\n```\n\n"
        "```{code-cell} ipython3\nbest = max(acc.values())\nglue('best', f'{best:.1%}')\n"
        "glue('size', f'{len(data)}')\n```\n"
    )
    assert glued_from_training(page) == ["best = max(acc.values())"]
