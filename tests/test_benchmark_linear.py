"""The linear-attention benchmark runs, and its checks can fail."""

from __future__ import annotations

import json

from benchmarks import linear


def test_the_quick_run_passes_its_checks_and_writes_json(tmp_path):
    assert linear.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "linear-quick.json").read_text())
    rows = result["rows"]
    assert {(r["function"], r["form"]) for r in rows} == {
        (f, form) for f in linear.FUNCTIONS for form in linear.FORMS
    }
    assert sorted({r["n"] for r in rows}) == list(linear.QUICK)
    assert all(r["max_error"] < 1e-4 and r["peak_mib"] > 0 for r in rows)


def test_the_checks_fail_on_bad_rows():
    rows = []
    for function in linear.FUNCTIONS:
        for n, slow in ((64, 1.0), (256, 100.0)):  # recurrent 100x slower for 4x the length
            rows.append(dict(function=function, form="recurrent", n=n, ms=slow, max_error=0.0))
            rows.append(dict(function=function, form="chunked", n=n, ms=slow, max_error=0.1))
    report = linear.targets(rows)
    assert not any(report.values())
