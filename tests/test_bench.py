"""Timing and memory measurement: counts, order and bytes, never a timed threshold."""

from __future__ import annotations

import pytest
import torch

from attention_book.bench import Timing, compare, peak_memory, power_law_exponent, time_fn

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
