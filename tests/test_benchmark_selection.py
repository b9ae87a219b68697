"""The top-k block attention benchmark runs, and its checks can fail."""

from __future__ import annotations

import json

from benchmarks import selection


def test_the_quick_run_is_exact_and_writes_json(tmp_path):
    selection.main(["--quick", "--out", str(tmp_path)])  # timing checks may fail on a busy CPU
    result = json.loads((tmp_path / "selection-quick.json").read_text())
    rows = result["rows"]
    assert [row["n"] for row in rows] == [512, 1024]
    assert all(row["max_error_vs_masked_dense"] < 1e-4 for row in rows)
    assert rows[0]["keys_read_per_query_at_most"] == 8 * 64 + 64 + 1


def test_the_checks_fail_on_bad_rows():
    rows = [
        {"n": 512, "dense_over_topk": 2.0, "max_error_vs_masked_dense": 1e-3},
        {"n": 1024, "dense_over_topk": 1.0, "max_error_vs_masked_dense": None},
    ]
    report = selection.targets(rows)
    assert report["N=512: within 1e-4 of dense SDPA under the mask"] is False
    assert report["dense/topk grows from the smallest to the largest N"] is False
