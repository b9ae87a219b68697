"""Project-wide pytest hooks for nbval: a second CPU code path, and the time budgets.

**Two CPU code paths.** The stored notebooks were executed on one processor; a reader's may
round differently. Every `make test` therefore re-executes the student labs (which repeat
their pages' code and training) with ``ATEN_CPU_CAPABILITY=default``, PyTorch's unvectorised
CPU kernels, and the chapter pages with the machine's own kernels. Both are compared strictly
with the stored outputs, so an output that depends on the processor and is not tagged
``nbval-ignore-output`` fails here, not on a reader's machine.

**Budgets.** Every page must run top to bottom in under 60 s on 2 cores. A page that must take
longer says so in its text and raises its own budget, at most to 120 s, in its front matter
(``attention_book: {budget_s: 120}``). The chapter pages (not their labs) together must take
under 600 s of wall time under nbval. A lab's budget is its page's times
``SECOND_PATH_SLOWDOWN``: the unvectorised kernels stand in for another processor's rounding,
not for its speed (readers' processors run PyTorch's vectorised kernels: AVX2 or AVX-512 on
x86, NEON on ARM), and they are slower: page 3.3's lab took 117 s alone on them, its page
76 s on AVX2. `make nbval` runs the notebooks in three pytest
sessions: the chapter pages that train on one thread, two at a time (pytest-xdist); their labs,
two at a time; then the pages that time code (``attention_book: {timing: true}``) and their
labs, alone. Each session adds its notebooks' times to ``_build/nbval-times.json``; the book's
wall time is the sum over the sessions of the time during which at least one chapter page was
running. Labs run in sessions of their own, so a lab running beside a page never stretches the
pages' wall time: the budget measures what running the chapter pages takes.
"""

from __future__ import annotations

import functools
import json
import os
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest

PAGE_BUDGET_S = 60.0
LONG_PAGE_BUDGET_S = 120.0
BOOK_BUDGET_S = 600.0
SECOND_PATH_SLOWDOWN = 1.5
SECOND_CPU_PATH = {"ATEN_CPU_CAPABILITY": "default"}
TIMES_FILE = Path(__file__).parent / "_build" / "nbval-times.json"

_seconds: dict[str, float] = defaultdict(float)
_spans: dict[str, list[float]] = {}
_SUMMARY = pytest.StashKey[tuple[int, float, list[str]]]()


def _notebook(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    return path if path.endswith(".ipynb") else None


def _is_lab(path: str) -> bool:
    return "/labs/" in path or path.startswith("labs/")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--timing-pages",
        choices=("all", "skip", "only"),
        default="all",
        help="run the notebooks whose front matter says `timing: true` too, not, or alone",
    )


@functools.cache
def _metadata(path: str) -> dict[str, object]:
    meta = nbformat.read(path, as_version=4).metadata.get("attention_book", {})
    return dict(meta)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep or drop the notebooks that time code, as ``--timing-pages`` says."""
    choice = config.getoption("--timing-pages")
    if choice == "all":
        return
    keep, drop = [], []
    for item in items:
        path = _notebook(item.nodeid)
        timing = path is not None and bool(_metadata(str(item.path)).get("timing"))
        (keep if timing == (choice == "only") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a notebook's kernel starts, choose its CPU code path (labs: the second one)."""
    path = _notebook(item.nodeid)
    if path is None:
        return
    for key, value in SECOND_CPU_PATH.items():
        if _is_lab(path):
            os.environ[key] = value
        else:
            os.environ.pop(key, None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = _notebook(report.nodeid)
    if path is None:
        return
    _seconds[path] += report.duration
    start, stop = getattr(report, "start", 0.0), getattr(report, "stop", 0.0)
    if start and stop:
        span = _spans.setdefault(path, [start, stop])
        span[0], span[1] = min(span[0], start), max(span[1], stop)


def _budget(path: str) -> float:
    """The page's own budget from its metadata, 60 s unless it asks for up to 120 s."""
    asked = _metadata(path).get("budget_s")
    budget = min(float(asked), LONG_PAGE_BUDGET_S) if asked else PAGE_BUDGET_S
    return budget * SECOND_PATH_SLOWDOWN if _is_lab(path) else budget


def _covered(spans: list[list[float]]) -> float:
    """Seconds during which at least one of the intervals was open."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(spans):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def _record() -> list[dict[str, object]]:
    """Add this session's times to the file of `make nbval`'s sessions; return them all."""
    sessions: list[dict[str, object]] = []
    if TIMES_FILE.exists():
        sessions = json.loads(TIMES_FILE.read_text())
    sessions.append({"seconds": dict(_seconds), "spans": _spans})
    TIMES_FILE.parent.mkdir(exist_ok=True)
    TIMES_FILE.write_text(json.dumps(sessions, indent=1))
    return sessions


def _book_wall(sessions: list[dict[str, object]]) -> float:
    walls = []
    for session in sessions:
        spans = session["spans"]
        assert isinstance(spans, dict)
        walls.append(_covered([s for p, s in spans.items() if not _is_lab(p)]))
    return sum(walls)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Record this session's times and fail it when a page or the book is over budget."""
    config = session.config
    if not _seconds or hasattr(config, "workerinput"):
        return
    sessions = _record()
    book_wall = _book_wall(sessions)
    over = [f"{p} took {s:.0f} s" for p, s in _seconds.items() if s > _budget(p)]
    if book_wall > BOOK_BUDGET_S:
        over.append(f"the book's pages took {book_wall:.0f} s of wall time")
    config.stash[_SUMMARY] = (len(sessions), book_wall, over)
    if over and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    summary = terminalreporter.config.stash.get(_SUMMARY, None)
    if summary is None:
        return
    n_sessions, book_wall, over = summary
    tr = terminalreporter
    tr.section(
        f"every notebook's time (budget: {PAGE_BUDGET_S:.0f} s a page unless it says up to "
        f"{LONG_PAGE_BUDGET_S:.0f} s; a lab {SECOND_PATH_SLOWDOWN:g} times its page's; "
        f"{BOOK_BUDGET_S:.0f} s of wall time for the book's pages)"
    )
    for path, seconds in sorted(_seconds.items(), key=lambda kv: -kv[1]):
        path_note = "  (CPU path: default)" if _is_lab(path) else ""
        tr.write_line(f"{seconds:7.1f} s  {Path(path)}{path_note}")
    pages = [p for p in _seconds if not _is_lab(p)]
    tr.write_line(f"{sum(_seconds.values()):7.1f} s  all {len(_seconds)} notebooks, in turn")
    tr.write_line(f"{sum(_seconds[p] for p in pages):7.1f} s  the {len(pages)} pages, in turn")
    where = TIMES_FILE.relative_to(Path(__file__).parent)
    tr.write_line(
        f"{book_wall:7.1f} s  wall time of the book's pages, over the {n_sessions} "
        f"session(s) recorded in {where}"
    )
    for problem in over:
        tr.write_line(f"OVER BUDGET: {problem}", red=True)
