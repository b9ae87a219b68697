"""The cache-memory benchmark runs, and its checks can fail."""

from __future__ import annotations

import json

from benchmarks import caches


def test_the_quick_run_passes_its_checks_and_writes_json(tmp_path):
    assert caches.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "caches-quick.json").read_text())
    rows = {row["cache"]: row for row in result["rows"]}
    assert set(rows) == {"MHA", "GQA", "MQA", "MLA", "paged", "local:global", "sinks"}
    assert rows["GQA"]["held_vs_mha"] == 0.25 and rows["MQA"]["held_vs_mha"] == 0.125
    # a contiguous cache allocates its reservation: 2048 positions for 200 tokens
    assert (
        rows["MHA"]["allocated_bytes_per_token"] == rows["MHA"]["held_bytes_per_token"] * 2048 / 200
    )
    assert rows["sinks"]["max_logit_error"] is None


def test_the_checks_fail_on_a_bad_row():
    row = {"max_logit_error": 0.0}
    rows = [
        {"cache": "MHA", "allocated_bytes_per_token": 10.0, "held_vs_mha": 1.0, **row},
        {"cache": "MQA", "held_bytes_per_token": 1.0, **row},
        {"cache": "MLA", "held_vs_mha": 0.5, "max_logit_error": 1e-3},
        {"cache": "paged", "allocated_bytes_per_token": 20.0, **row},
    ]
    report = caches.targets(rows)
    assert report["MLA: logits within 1e-4 of the full pass"] is False
    assert report["paged allocates less than a contiguous reservation"] is False
    assert report["MLA holds what GQA with 2.25 key/value heads would"] is False
