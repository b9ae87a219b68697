"""``checks.ch7_hybrid``: the checker accepts the reference and rejects wrong answers."""

import pytest
import torch

from attention_book import checks, modern

DTYPES = {1: torch.uint8, 2: torch.float16, 4: torch.float32, 8: torch.float64}


def hybrid_cache_bytes(num_layers, num_kv_heads, head_dim, length, window, every, nbytes):
    globals_ = 0 if every is None else num_layers // every
    kept = globals_ * length + (num_layers - globals_) * min(window, length)
    return 2 * num_kv_heads * head_dim * kept * nbytes


def package_version(num_layers, num_kv_heads, head_dim, length, window, every, nbytes):
    return modern.hybrid_cache_bytes(
        num_layers, num_kv_heads, head_dim, length, window, every, dtype=DTYPES[nbytes]
    )


def per_layer_loop(num_layers, num_kv_heads, head_dim, length, window, every, nbytes):
    kept = 0
    for i in range(num_layers):
        is_global = every is not None and (i + 1) % every == 0
        kept += length if is_global else min(window, length)
    return 2 * num_kv_heads * head_dim * kept * nbytes


def every_layer_global(num_layers, num_kv_heads, head_dim, length, window, every, nbytes):
    return 2 * num_layers * num_kv_heads * head_dim * length * nbytes


def keys_only(*args):
    return hybrid_cache_bytes(*args) // 2


def window_not_capped(num_layers, num_kv_heads, head_dim, length, window, every, nbytes):
    globals_ = 0 if every is None else num_layers // every
    kept = globals_ * length + (num_layers - globals_) * window  # min(window, length) forgotten
    return 2 * num_kv_heads * head_dim * kept * nbytes


def first_layer_global(num_layers, num_kv_heads, head_dim, length, window, every, nbytes):
    kept = 0
    for i in range(num_layers):  # i % every == 0: layer 0 global, one layer too early
        is_global = every is not None and i % every == 0
        kept += length if is_global else min(window, length)
    return 2 * num_kv_heads * head_dim * kept * nbytes


def rounded_up(num_layers, num_kv_heads, head_dim, length, window, every, nbytes):
    globals_ = 0 if every is None else -(-num_layers // every)  # a partial group counted
    kept = globals_ * length + (num_layers - globals_) * min(window, length)
    return 2 * num_kv_heads * head_dim * kept * nbytes


def swapped(num_layers, num_kv_heads, head_dim, length, window, every, nbytes):
    globals_ = 0 if every is None else num_layers // every
    kept = globals_ * min(window, length) + (num_layers - globals_) * length
    return 2 * num_kv_heads * head_dim * kept * nbytes


def test_check_hybrid_cache_bytes_accepts_right_answers(capsys):
    for right in (hybrid_cache_bytes, package_version, per_layer_loop):
        assert checks.check_hybrid_cache_bytes(right) is True
        assert "passes all 7 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named"),
    [
        (every_layer_global, "no global layer: every layer keeps a window"),
        (keys_only, "one global layer, one head of size 1, one position"),
        (window_not_capped, "a window longer than the sequence keeps it all"),
        (first_layer_global, "8 layers, one global in 6: layer 5, not 0 and 6"),
        (rounded_up, "8 layers, one global in 6: layer 5, not 0 and 6"),
        (swapped, "every layer global: the plain KV cache"),
        (lambda *args: None, "one global layer, one head of size 1, one position"),
        (lambda *args: 1 / 0, "calling it raised ZeroDivisionError"),
    ],
)
def test_check_hybrid_cache_bytes_rejects_wrong_answers(wrong, named, capsys):
    assert checks.check_hybrid_cache_bytes(wrong) is False
    assert named in capsys.readouterr().out


def test_check_hybrid_cache_bytes_needs_a_function():
    with pytest.raises(TypeError, match="fn must be a function, got int"):
        checks.check_hybrid_cache_bytes(3)
