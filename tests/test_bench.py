"""Timing and memory measurement: counts, order and bytes, never a timed threshold."""

from __future__ import annotations

import json
import math

import pytest
import torch

from attention_book import bench
from attention_book.attention import causal_mask
from attention_book.bench import (
    IMPLEMENTATIONS,
    REFERENCE_MASKS,
    SweepRow,
    Timing,
    compare,
    crossover,
    format_sweep,
    load_sweep,
    peak_memory,
    plot_sweep,
    power_law_exponent,
    save_sweep,
    sweep,
    time_fn,
)

MB = 1_000_000


def test_peak_memory_of_a_known_tensor_is_its_size():
    n = 1000
    peak = peak_memory(lambda: torch.empty(n, n))  # float32: n * n * 4 bytes
    assert abs(peak - n * n * 4) <= 0.01 * n * n * 4, peak


def test_peak_memory_counts_dtype_and_result():
    assert abs(peak_memory(lambda: torch.zeros(500, 500, dtype=torch.float64)) - 2 * MB) < 0.01 * MB
    assert abs(peak_memory(lambda: torch.ones(250_000, dtype=torch.int8)) - 0.25 * MB) < 1e4


def test_peak_memory_sees_what_is_freed_before_the_end():
    def one_at_a_time():
        a = torch.ones(MB // 4)  # 1 MB
        del a
        b = torch.ones(MB // 4)
        return b

    def both_at_once():
        a = torch.ones(MB // 4)
        b = torch.ones(MB // 4)
        return a, b

    def temporary():
        return (torch.ones(1000, 1000) * 2).sum()  # 4 MB twice, briefly; returns a scalar

    assert abs(peak_memory(one_at_a_time) - MB) < 0.01 * MB
    assert abs(peak_memory(both_at_once) - 2 * MB) < 0.02 * MB
    assert abs(peak_memory(temporary) - 8 * MB) < 0.02 * MB


def test_peak_memory_ignores_memory_allocated_before():
    x = torch.zeros(1000, 1000)
    assert peak_memory(lambda: x.add_(1)) < 1000  # in place: no new storage


def test_peak_memory_of_attention_scores_is_quadratic():
    q = torch.randn(1, 512, 16)

    def scores():
        return q @ q.transpose(-2, -1)

    assert abs(peak_memory(scores) - 512 * 512 * 4) < 0.01 * 512 * 512 * 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_peak_memory_on_cuda():
    peak = peak_memory(lambda: torch.empty(1000, 1000, device="cuda"), device="cuda")
    assert abs(peak - 4 * MB) <= 0.01 * 4 * MB


def test_peak_memory_rejects_bad_arguments():
    with pytest.raises(TypeError, match="fn must be callable"):
        peak_memory(torch.ones(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="device must be 'cpu' or a CUDA device, got meta"):
        peak_memory(lambda: None, device="meta")
    with pytest.raises(TypeError, match="device must be a str or torch.device, got int"):
        peak_memory(lambda: None, device=0)  # type: ignore[arg-type]


def test_compare_alternates_after_warming_up():
    calls: list[str] = []
    result = compare(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=2
    )
    assert calls == ["a", "b"] * 5  # two warm-up rounds, then three timed rounds, in turns
    assert list(result) == ["a", "b"]
    for name, timing in result.items():
        assert timing.name == name and len(timing.times) == 3
        assert all(t >= 0 for t in timing.times)


def test_time_fn_names_and_counts():
    calls = []

    def work():
        calls.append(1)

    timing = time_fn(work, repeats=4, warmup=0)
    assert timing.name == "work" and len(timing.times) == 4 and len(calls) == 4


def test_timing_statistics():
    slow, fast = Timing("slow", (3.0, 1.0, 2.0, 100.0, 2.0)), Timing("fast", (1.0, 1.0, 0.5))
    assert slow.median == 2.0 and slow.best == 1.0
    assert slow.ratio(fast) == 2.0
    assert "median 2000.00 ms over 5 runs" in str(slow)
    with pytest.raises(TypeError, match="other must be a Timing"):
        slow.ratio(2.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fns": {}}, ValueError, "fns must be a non-empty mapping"),
        ({"fns": {"x": 3}}, TypeError, r"fns\['x'\] must be callable"),
        ({"fns": {"x": print}, "repeats": 0}, ValueError, "repeats must be > 0, got 0"),
        ({"fns": {"x": print}, "repeats": 1.5}, TypeError, "repeats must be an int"),
        ({"fns": {"x": print}, "warmup": -1}, ValueError, "warmup must be an int >= 0, got -1"),
    ],
)
def test_compare_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        compare(**kwargs)


def test_power_law_exponent():
    sizes = [64, 128, 256, 512]
    assert power_law_exponent(sizes, [3 * s**2 for s in sizes]) == pytest.approx(2.0)
    assert power_law_exponent(sizes, [0.1 * s for s in sizes]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same length >= 2, got 2 sizes and 1 values"):
        power_law_exponent([1, 2], [1])
    with pytest.raises(ValueError, match="must be > 0"):
        power_law_exponent([1, 2], [0, 1])
    with pytest.raises(ValueError, match="must not all be equal"):
        power_law_exponent([4, 4], [1, 2])


def test_peak_memory_keeps_the_profiler_quiet(capfd):
    peak_memory(lambda: torch.ones(10))
    assert capfd.readouterr().err == ""  # kineto's start/stop lines would break nbval


# --- sweep and its readers -----------------------------------------------------------------


def _row(n, ms, memory=None, error=None):
    return SweepRow(n, ms, ms, memory or dict.fromkeys(ms, 1.0), error or dict.fromkeys(ms, 0.0))


def test_sweep_measures_every_implementation_at_every_size():
    def causal(q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    def naive(q, k, v):
        return torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1) @ v

    fns = {"naive": naive, "causal": causal, "causal unmasked": causal}
    rows = sweep(
        fns,
        sizes=[32, 64],
        heads=2,
        dim=8,
        repeats=2,
        masks={"causal": causal_mask},
        max_n={"naive": 32},
    )
    assert [row.n for row in rows] == [32, 64]
    assert list(rows[0].ms) == ["naive", "causal", "causal unmasked"]
    assert list(rows[1].ms) == ["causal", "causal unmasked"]  # naive stops at N = 32
    for row in rows:
        assert all(row.best_ms[name] <= row.ms[name] for name in row.ms)
        assert row.max_abs_error["causal"] < 1e-5  # compared with causal attention
        assert row.max_abs_error["causal unmasked"] > 0.1  # compared with unmasked attention
    # the scores and the weights, 2 heads x 32 x 32 float32 each, alive together
    assert 2 * 2 * 32 * 32 * 4 / 2**20 <= rows[0].peak_mib["naive"] < 2.5 * 2 * 32 * 32 * 4 / 2**20


def test_the_default_table_is_exact_where_it_should_be():
    (row,) = sweep(sizes=[96], heads=2, dim=8, repeats=1)
    assert set(row.ms) == set(IMPLEMENTATIONS) >= {"naive", "sdpa", "flash", "window", "linear"}
    for name in ["naive", "sdpa", "sdpa_causal", "flash", "flash_causal", "window"]:
        assert row.max_abs_error[name] < 1e-5, name  # exact, against its own mask
    for name in ["linear", "linear_causal"]:
        assert row.max_abs_error[name] > 0.01, name  # a different function
    assert all(math.isfinite(e) for e in row.max_abs_error.values())
    assert set(REFERENCE_MASKS) <= set(IMPLEMENTATIONS)


def test_sweep_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least one function"):
        sweep({})
    with pytest.raises(TypeError, match=r"implementations\['x'\] must be callable"):
        sweep({"x": 3})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="sizes must be a non-empty sequence"):
        sweep(sizes=[])
    with pytest.raises(ValueError, match="each size must be > 0"):
        sweep(sizes=[0])
    with pytest.raises(ValueError, match="repeats must be > 0"):
        sweep(sizes=[8], repeats=0)


def test_crossover_needs_every_larger_size_to_agree():
    rows = [
        _row(256, {"linear": 1.0, "sdpa": 2.0}),  # a lucky small N: does not count
        _row(512, {"linear": 3.0, "sdpa": 2.0}),
        _row(1024, {"linear": 3.0, "sdpa": 4.0}),
        _row(2048, {"linear": 5.0, "sdpa": 9.0}),
    ]
    assert crossover(rows, "linear", "sdpa") == 1024
    assert crossover(rows, "sdpa", "linear") is None
    assert crossover(rows[:1], "linear", "sdpa") == 256
    with pytest.raises(ValueError, match="no row measured both 'linear' and 'naive'"):
        crossover(rows, "linear", "naive")
    with pytest.raises(ValueError, match="key must be 'ms' or 'best_ms'"):
        crossover(rows, "linear", "sdpa", key="peak_mib")
    with pytest.raises(ValueError, match="rows must be a non-empty list of SweepRow"):
        crossover([], "linear", "sdpa")


def test_format_sweep_shows_a_column_per_size_and_gaps():
    rows = [_row(256, {"naive": 1.5, "sdpa": 0.25}), _row(512, {"sdpa": 1.0})]
    lines = format_sweep(rows).splitlines()
    assert lines[0].split() == ["ms", "N=256", "N=512"]
    assert lines[1].split() == ["naive", "1.5", "-"] and lines[2].split() == ["sdpa", "0.2", "1.0"]
    assert "0.00e+00" in format_sweep(rows, "max_abs_error")
    with pytest.raises(ValueError, match="key must be one of"):
        format_sweep(rows, "seconds")


def test_plot_sweep_has_three_panels_and_a_line_per_implementation():
    import matplotlib.pyplot as plt

    rows = [_row(n, {"sdpa": 1.0 * n, "sdpa_causal": 0.5 * n, "linear": 2.0}) for n in (64, 128)]
    fig = plot_sweep(rows, title="a machine")
    try:
        time_ax, memory_ax, error_ax = fig.axes[:3]
        assert [ax.get_title() for ax in (time_ax, memory_ax, error_ax)] == [
            "time",
            "memory",
            "error",
        ]
        lines = {line.get_label(): line for line in time_ax.get_lines()}
        assert set(lines) == {"sdpa", "sdpa_causal", "linear"}
        assert lines["sdpa_causal"].get_color() == lines["sdpa"].get_color()
        assert lines["sdpa_causal"].get_linestyle() == "--"
        assert len(error_ax.get_lines()) == 3  # errors of exactly 0 are drawn, low
    finally:
        plt.close(fig)


def test_save_and_load_sweep_round_trip(tmp_path):
    rows = [_row(256, {"sdpa": 1.0}, {"sdpa": 0.5}, {"sdpa": 1e-7})]
    path = save_sweep(rows, tmp_path / "sweep.json", machine="x86_64", threads=2)
    assert load_sweep(path) == rows
    assert json.loads(path.read_text())["machine"] == "x86_64"


def test_num_threads_limits_the_block_and_restores_the_count():
    before = torch.get_num_threads()
    with bench.num_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), bench.num_threads(1):
        raise RuntimeError("the count comes back even after an error")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_num_threads_rejects_a_bad_count(threads):
    with (
        pytest.raises(ValueError, match="threads must be a positive int"),
        bench.num_threads(threads),
    ):
        pass
