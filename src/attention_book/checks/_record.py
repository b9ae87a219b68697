"""Grading that a student's notebook cannot forge: record in the student's kernel, judge outside.

A checker calls the student's code only through ``_harness._call``. When a grader runs a lab
with the environment variable :data:`ENV` naming a file, every call made inside a
:func:`graded` block is written to that file as plain data: the returned tensors and numbers,
the exception, or "not implemented", and the arguments the call changed in place. Nothing is
judged in the student's kernel.

The grader then runs the same checker again in its own process, under :func:`replaying`: each
``_call`` returns the recorded value instead of calling anything, so every comparison, every
``allclose`` and the verdict happen where the student's code never ran. A notebook that
replaces the checkers, prints the pass symbol, patches ``torch.allclose``, or stops before its
checks leaves a recording that is missing or wrong, and the replayed checker fails.

The file is read with ``json`` and ``numpy.load(allow_pickle=False)``: data only, no code.
The recording also notes which of the package's own functions ran inside the student's code,
so that the grader can tell a solution that calls the book's reference from one that computes.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import nn

ENV = "ATTENTION_BOOK_GRADING_RECORD"
PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)
CHECKS_DIR = str(Path(__file__).resolve().parent)

_state: dict[str, Any] = {"nonce": None, "replay": None}


# --- plain data in and out ----------------------------------------------------------------


def _array_text(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _array_from(text: str) -> np.ndarray:
    array: np.ndarray = np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)
    return array


def encode(value: Any) -> Any:
    """Turn a returned value into JSON: tensors, arrays, numbers, containers, module shapes."""
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu()
        if data.dtype in (torch.bfloat16, torch.float16):
            data = data.float()
        return {
            "kind": "tensor",
            "dtype": str(value.dtype).removeprefix("torch."),
            "data": _array_text(data.resolve_conj().numpy()),
            "requires_grad": bool(value.requires_grad),
        }
    if isinstance(value, np.ndarray) and value.dtype != object:
        return {"kind": "ndarray", "data": _array_text(value)}
    if isinstance(value, np.generic):
        return {"kind": "scalar", "data": _array_text(np.asarray(value))}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"kind": "py", "value": value}
    if isinstance(value, (tuple, list)):
        return {"kind": type(value).__name__, "items": [encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"kind": type(value).__name__, "items": [encode(v) for v in value]}
    if isinstance(value, dict):
        pairs = [[encode(k), encode(v)] for k, v in value.items()]
        return {"kind": "dict", "items": pairs}
    if isinstance(value, nn.Module):  # its shape only: the outputs it gives are recorded
        linears = {
            name: [child.in_features, child.out_features, child.bias is not None]
            for name, child in value.named_children()
            if isinstance(child, nn.Linear)
        }
        return {"kind": "module", "class": type(value).__name__, "linears": linears}
    return {"kind": "opaque", "type": type(value).__name__}


class _StandIn(nn.Module):
    """What a recorded module becomes in the grader: its linear layers, no behaviour."""

    def __init__(self, class_name: str, linears: dict[str, list[Any]]) -> None:
        super().__init__()
        self.class_name = class_name
        for name, (n_in, n_out, bias) in linears.items():
            setattr(self, name, nn.Linear(int(n_in), int(n_out), bias=bool(bias)))


class _Opaque:
    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<a {self.type_name}>"


def decode(data: Any) -> Any:
    """The inverse of :func:`encode`, building values only (modules become stand-ins)."""
    kind = data["kind"]
    if kind == "tensor":
        tensor = torch.from_numpy(_array_from(data["data"]).copy())
        tensor = tensor.to(getattr(torch, data["dtype"]))
        return tensor.requires_grad_(True) if data["requires_grad"] else tensor
    if kind == "ndarray":
        return _array_from(data["data"])
    if kind == "scalar":
        return _array_from(data["data"])[()]
    if kind == "py":
        return data["value"]
    if kind in ("tuple", "list", "set", "frozenset"):
        items = [decode(v) for v in data["items"]]
        return {"tuple": tuple, "list": list, "set": set, "frozenset": frozenset}[kind](items)
    if kind == "dict":
        return {decode(k): decode(v) for k, v in data["items"]}
    if kind == "module":
        return _StandIn(data["class"], data["linears"])
    return _Opaque(data["type"])


# --- recording, in the student's kernel ---------------------------------------------------


def recording() -> bool:
    """True inside a :func:`graded` block of a kernel that a grader started."""
    return _state["nonce"] is not None and bool(os.environ.get(ENV))


def _write(event: dict[str, Any]) -> None:
    with open(os.environ[ENV], "a", encoding="utf-8") as file:
        file.write(json.dumps({"nonce": _state["nonce"], **event}) + "\n")


@contextlib.contextmanager
def graded(nonce: str) -> Iterator[None]:
    """Record the checker calls of this block under the grader's ``nonce``."""
    _state["nonce"] = nonce
    try:
        if os.environ.get(ENV):
            _write({"event": "begin"})
        yield
    finally:
        if os.environ.get(ENV):
            _write({"event": "end"})
        _state["nonce"] = None


def record_run(name: str) -> None:
    """A checker named ``name`` starts: the replay must find the same name."""
    if recording():
        _write({"event": "run", "name": name})


def _package_calls(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, list[str]]:
    """Call ``fn(*args)``, noting the package functions (not the checkers) that ran inside."""
    seen: set[str] = set()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            code = frame.f_code
            if code.co_filename.startswith(PACKAGE_DIR) and not code.co_filename.startswith(
                CHECKS_DIR
            ):
                seen.add(getattr(code, "co_qualname", code.co_name))

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        return fn(*args), sorted(seen)
    finally:
        sys.setprofile(previous)


def call(fn: Callable[..., Any], args: dict[str, Any]) -> Any:
    """Call the student's code with ``args`` and write what happened (recording mode)."""
    before: dict[str, Any] = {k: v.clone() for k, v in args.items() if isinstance(v, torch.Tensor)}
    before |= {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    origin = getattr(fn, "__module__", "") or ""
    defined_in_package = origin.split(".")[0] == "attention_book"
    try:
        out, used = _package_calls(fn, tuple(args.values()))
    except NotImplementedError:
        _write({"event": "call", "result": "not implemented"})
        raise
    except BaseException as error:  # the harness turns it into feedback; so does the replay
        _write(
            {
                "event": "call",
                "result": "raised",
                "error": f"{type(error).__name__}: {error}",
                "package": [],
                "defined_in_package": defined_in_package,
            }
        )
        raise
    if isinstance(out, Iterator):  # a generator: the checker reads it once, as a list
        out = list(out)
    changed = {}
    for name, old in before.items():
        new = args[name]
        same = torch.equal(old, new) if isinstance(old, torch.Tensor) else np.array_equal(old, new)
        if not same:
            changed[name] = encode(new)
    _write(
        {
            "event": "call",
            "result": "returned",
            "value": encode(out),
            "changed": changed,
            "package": used,
            "defined_in_package": defined_in_package,
        }
    )
    return out


# --- replaying, in the grader -------------------------------------------------------------


class Replay:
    """The recorded events of one graded check cell, consumed in order by the checker."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = [e for e in events if e["event"] in ("run", "call")]
        self.position = 0
        self.package_calls: set[str] = set()
        self.defined_in_package = False

    def next(self, kind: str) -> dict[str, Any] | None:
        if self.position >= len(self.events):
            return None
        event = self.events[self.position]
        self.position += 1
        return event if event["event"] == kind else None


class MissingRecord(Exception):
    """The student's kernel left no record of this step: it stopped, or the checker was not
    the book's."""


@contextlib.contextmanager
def replaying(events: list[dict[str, Any]]) -> Iterator[Replay]:
    """Make the harness answer every call from ``events`` instead of calling anything."""
    replay = Replay(events)
    _state["replay"] = replay
    try:
        yield replay
    finally:
        _state["replay"] = None


def replay_active() -> Replay | None:
    replay: Replay | None = _state["replay"]
    return replay


def replay_run(name: str) -> None:
    replay = replay_active()
    if replay is None:
        return
    event = replay.next("run")
    if event is None or event.get("name") != name:
        raise MissingRecord(f"no recorded run of the checker {name}")


def replay_call(args: dict[str, Any]) -> tuple[str, Any]:
    """The recorded outcome of the next call: ``("returned", value)``, ``("raised", text)``
    or ``("not implemented", None)``; arguments changed in place are changed here too."""
    replay = replay_active()
    assert replay is not None
    event = replay.next("call")
    if event is None:
        raise MissingRecord("the notebook stopped before this call, or its checker was replaced")
    replay.package_calls.update(event.get("package", []))
    replay.defined_in_package |= bool(event.get("defined_in_package"))
    if event["result"] == "not implemented":
        return "not implemented", None
    if event["result"] == "raised":
        return "raised", event["error"]
    for name, value in event.get("changed", {}).items():
        new = decode(value)
        target = args.get(name)
        if isinstance(target, torch.Tensor) and isinstance(new, torch.Tensor):
            with torch.no_grad():
                target.copy_(new.to(target.dtype))
        elif isinstance(target, np.ndarray):
            target[...] = np.asarray(new)
    return "returned", decode(event["value"])


# --- judging: replay a recorded check and say how it went ------------------------------------

STATUS = {"✓": "passed", "✗": "failed", "…": "not implemented"}
# A replay sets this module's state and captures the process's stdout: one at a time.
_JUDGING = threading.Lock()


class StandIn:
    """Passed to a replayed checker in place of the student's function or class."""

    def __call__(self, *args: Any) -> Any:  # pragma: no cover - a replay calls nothing
        raise AssertionError("a replayed checker called the student's code")


def judge(checker: str, argument: str, events: list[dict[str, Any]]) -> tuple[str, str]:
    """Replay one recorded check of ``checks.<checker>(<argument>)``: ``(status, feedback)``.

    The status is ``passed``, ``failed``, ``not implemented``, ``no record`` (the notebook
    stopped before the check ended, or the checker that ran was not the book's) or ``uses the
    reference`` (the answer is, or calls, the package's own function of that name).
    """
    checks = importlib.import_module("attention_book.checks")
    if not any(e.get("event") == "end" for e in events):
        return "no record", "the notebook stopped before this check finished"
    output = io.StringIO()
    try:
        with _JUDGING, replaying(events) as replay, contextlib.redirect_stdout(output):
            getattr(checks, checker)(StandIn)
    except MissingRecord as missing:
        return "no record", f"{missing}: the checker did not run as the book's does"
    except Exception as error:  # a record that does not fit the checker
        return "no record", f"the record does not fit {checker}: {type(error).__name__}"
    text = output.getvalue().strip()
    references = [
        name
        for name in sorted(replay.package_calls)
        if argument in (name.split(".")[0], name.split(".")[-1])
    ]
    if replay.defined_in_package or references:
        return "uses the reference", (
            f"{argument} is the package's own {', '.join(references) or argument}"
        )
    return STATUS.get(text[:1], "failed"), text


def read(record: Path) -> dict[str, list[dict[str, Any]]]:
    """The events of a record file, by nonce; lines cut short by a dying kernel are skipped."""
    events: dict[str, list[dict[str, Any]]] = {}
    if record.exists():
        for line in record.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and isinstance(event.get("nonce"), str):
                events.setdefault(event["nonce"], []).append(event)
    return events


def verified(checker: str, answer: Any, argument: str | None = None) -> bool:
    """Run ``checks.<checker>(answer)`` here, recorded, and judge it in a fresh Python.

    For autograders that run their tests inside the student's kernel (otter-grader,
    nbgrader): the comparisons happen in a new process that the student's code never touched,
    so a patched ``allclose``, a replaced checker or a printed pass symbol earns nothing.

    Args:
        checker: the name of a checker, such as ``"check_softmax"``.
        answer: the student's function or class.
        argument: the name the answer has in the notebook (default: its ``__name__``).

    Returns:
        ``True`` only when the replayed check passed without the package's own reference.

    Introduced in :ref:`sec-instructors`.
    """
    checks = importlib.import_module("attention_book.checks")
    name = argument or getattr(answer, "__name__", "")
    with tempfile.TemporaryDirectory() as folder:
        record = Path(folder) / "record.jsonl"
        before = os.environ.get(ENV)
        os.environ[ENV] = str(record)
        try:
            with contextlib.redirect_stdout(io.StringIO()), graded("verified"):
                getattr(checks, checker)(answer)
        except Exception:
            pass
        finally:
            if before is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = before
        command = [sys.executable, "-c", _REPLAY, str(record), checker, str(name)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.SubprocessError):
            return False
    return done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == ["passed"]


_REPLAY = (
    "import sys; from attention_book.checks._record import _main; sys.exit(_main(sys.argv[1:]))"
)


def _main(argv: list[str]) -> int:
    record, checker, argument = argv
    status, feedback = judge(checker, argument, read(Path(record)).get("verified", []))
    print(feedback)
    print(status)
    return 0 if status == "passed" else 1
