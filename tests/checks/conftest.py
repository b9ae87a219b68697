"""Every checker test runs twice: as a student's kernel sees it, and as the grader replays it.

``scripts/grade_labs.py`` records the calls a checker makes in the student's kernel and runs
the checker again in its own process, answered from the record (``checks._record``). Here
every ``checks.check_*`` call of these tests is recorded, then replayed, and the replay must
print exactly what the recorded run printed: so the grader's verdict agrees with the
checker's for every right and wrong answer these tests try.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from attention_book import checks
from attention_book.checks import _record


def _twice(checker: Callable[[Any], bool], record: Path) -> Callable[[Any], bool]:
    def run(answer: Any) -> bool:
        record.unlink(missing_ok=True)
        seen = io.StringIO()
        with contextlib.redirect_stdout(seen), _record.graded("test"):
            result = checker(answer)
        events = [json.loads(line) for line in record.read_text().splitlines()]
        replayed = io.StringIO()
        with _record.replaying(events), contextlib.redirect_stdout(replayed):
            again = checker(type("StandIn", (), {"__call__": None}))
        same = [re.sub(r" at 0x[0-9a-f]+", "", out.getvalue()) for out in (replayed, seen)]
        assert (again, same[0]) == (result, same[1]), "the replay differs"
        print(seen.getvalue(), end="")
        return result

    return run


@pytest.fixture(autouse=True)
def record_and_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv(_record.ENV, str(record))
    for name in (n for n in checks.__all__ if n.startswith("check_")):
        monkeypatch.setattr(checks, name, _twice(getattr(checks, name), record))
    yield
