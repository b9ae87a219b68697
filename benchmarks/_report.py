"""The ending every chapter-7 benchmark shares: print its checks, write its JSON, exit code."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch


def finish(
    out: Path,
    name: str,
    benchmark: str,
    rows: Any,
    checks: dict[str, bool],
    *,
    quick: bool = False,
    width: int = 55,
    **settings: Any,
) -> int:
    """Print ``checks``, write ``out/name.json`` (``name-quick.json`` for ``--quick``).

    The JSON holds the benchmark's title, the machine, the torch version, the benchmark's own
    ``settings``, its ``rows`` and its ``checks``. Returns 0 when every check holds, else 1.
    """
    print("\nchecks")
    for key, value in checks.items():
        print(f"  {key:{width}s} {value}")
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": benchmark,
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        **settings,
        "rows": rows,
        "checks": checks,
    }
    path = out / (f"{name}-quick.json" if quick else f"{name}.json")
    path.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(checks.values()) else 1
