"""The shared harness of every checker: run properties, call the student's code, print feedback.

A property is a function that raises :class:`_Failure` with the feedback when it does not hold;
:func:`_run` runs a checker's properties in order and prints one line. Nothing here is public:
the checkers in the chapter modules are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import _record

# Plain symbols that every monospace font has (emoji render as boxes in some browsers).
PASS = "✓"


FAIL = "✗"


TODO = "…"


class _Failure(Exception):
    """One property failed: carries the feedback for the student."""


def _fmt(x: Any, indent: int = 0) -> str:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray) and x.size > 24:
        return f"an array of shape {x.shape}"
    if not isinstance(x, (np.ndarray, list, tuple, float, int, bool)):
        return str(x)
    text = np.array2string(np.asarray(x), precision=3, suppress_small=True, separator=", ")
    return text.replace("\n", "\n" + " " * indent)


def _shown(args: dict[str, Any]) -> str:
    return "".join(f"\n     {k} = {_fmt(v, indent=8 + len(k))}" for k, v in args.items())


class _Replayed(Exception):
    """A crash of the student's code, as recorded in their kernel (see ``_record``)."""


def _call(fn: Callable[..., Any], args: dict[str, Any], prop: str) -> Any:
    """Call the student's code; turn any crash into feedback naming the input.

    Under a grader (``_record``) the call is written down in the student's kernel, and in the
    grader's own process it is answered from that record instead of calling anything.
    """
    try:
        with np.errstate(all="ignore"):  # overflow shows up as nan in the feedback instead
            if _record.replay_active() is not None:
                outcome, value = _record.replay_call(args)
                if outcome == "not implemented":
                    raise NotImplementedError
                if outcome == "raised":
                    raise _Replayed(value)
                return value
            if _record.recording():
                return _record.call(fn, args)
            return fn(*args.values())  # positional: your parameter names are yours
    except (NotImplementedError, _record.MissingRecord):
        raise
    except Exception as error:  # any crash is feedback, not a stopped notebook
        what = str(error) if isinstance(error, _Replayed) else f"{type(error).__name__}: {error}"
        raise _Failure(f"{prop}\n   calling it raised {what}\n   input:{_shown(args)}") from None


def _array(out: Any, what: str, prop: str, args: dict[str, Any]) -> np.ndarray:
    """Convert a returned tensor or array to a float64 NumPy array."""
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu()
        out = out.double() if out.dtype != torch.bool else out
        result: np.ndarray = out.numpy()
        return result
    try:
        return np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError):
        raise _Failure(
            f"{prop}\n   {what} is a {type(out).__name__}, expected a tensor"
            f"\n   input:{_shown(args)}"
        ) from None


def _pair(
    fn: Callable[..., Any], args: dict[str, Any], prop: str, names: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Call ``fn(**args)``, which must return two tensors, and convert both."""
    out = _call(fn, args, prop)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise _Failure(
            f"{prop}\n   it returned {type(out).__name__}, expected a pair ({', '.join(names)})"
        )
    first, second = (_array(o, f"the {n}", prop, args) for o, n in zip(out, names, strict=True))
    return first, second


def _expect(ok: bool, prop: str, args: dict[str, Any], expected: Any, got: Any) -> None:
    if not ok:
        raise _Failure(
            f"{prop}\n   input:{_shown(args)}"
            f"\n   expected: {_fmt(expected, 13)}\n   got:      {_fmt(got, 13)}"
        )


def _close(got: np.ndarray, want: np.ndarray, atol: float = 1e-6) -> bool:
    return got.shape == want.shape and bool(np.allclose(got, want, atol=atol, rtol=1e-5))


def _run(name: str, checks: list[Callable[[], None]]) -> bool:
    _record.record_run(name)
    _record.replay_run(name)
    try:
        for check in checks:
            check()
    except NotImplementedError:
        print(f"{TODO} {name} is not implemented yet: replace the `raise NotImplementedError`.")
        return False
    except _Failure as failure:
        print(f"{FAIL} {name} failed a check.\n   property: {failure}")
        return False
    print(f"{PASS} {name} passes all {len(checks)} checks.")
    return True


def _require_callable(name: str, fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"{name} must be a function, got {type(fn).__name__}")


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _copy(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value
