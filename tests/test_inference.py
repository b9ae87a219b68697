"""The inference helpers of attention_book.efficient: repeat_kv and kv_cache_bytes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attention_book.efficient import KVCache, kv_cache_bytes, repeat_kv


def test_repeat_kv_gives_each_query_head_the_head_of_its_group():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    assert repeat_kv(x, 1) is x
    out = repeat_kv(x, 2)
    assert out.shape == (2, 6, 4, 5)
    for h in range(6):
        assert torch.equal(out[:, h], x[:, h // 2])
    assert repeat_kv(x[0], 3).shape == (9, 4, 5)  # no batch dim: heads third from last


def test_grouped_attention_by_repeat_kv_equals_pytorch_with_shared_heads():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 8, 6, 16, generator=g)
    k, v = torch.randn(2, 2, 6, 16, generator=g), torch.randn(2, 2, 6, 16, generator=g)
    ours = F.scaled_dot_product_attention(q, repeat_kv(k, 4), repeat_kv(v, 4), is_causal=True)
    for h in range(8):  # query heads 0-3 read key/value head 0, heads 4-7 head 1
        want = F.scaled_dot_product_attention(q[:, h], k[:, h // 4], v[:, h // 4], is_causal=True)
        torch.testing.assert_close(ours[:, h], want, atol=1e-6, rtol=0)


def test_repeat_kv_rejects_bad_arguments():
    with pytest.raises(ValueError, match="at least 3 dimension"):
        repeat_kv(torch.zeros(4, 5), 2)
    with pytest.raises(ValueError, match="n_rep must be > 0"):
        repeat_kv(torch.zeros(1, 2, 4, 5), 0)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        repeat_kv([[1.0]], 2)


def test_kv_cache_bytes_equals_what_a_cache_allocates():
    layers, heads, length, d, batch = 3, 2, 7, 16, 5
    caches = [KVCache(length) for _ in range(layers)]
    for cache in caches:
        cache.update(torch.zeros(batch, heads, length, d), torch.zeros(batch, heads, length, d))
    assert sum(c.nbytes for c in caches) == kv_cache_bytes(layers, heads, d, length, batch)
    assert kv_cache_bytes(32, 32, 128, 4096, dtype=torch.float16) == 2 * 2**30  # 2 GiB
    assert kv_cache_bytes(1, 1, 1, 1) == 8  # one key and one value, 4 bytes each
    assert kv_cache_bytes(2, 8, 64, 100, dtype=torch.bfloat16) == 4 * kv_cache_bytes(
        2, 2, 64, 100, dtype=torch.bfloat16
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((0, 1, 1, 1), {}, ValueError, "num_layers must be > 0"),
        ((1, 1, 1, 0), {}, ValueError, "length must be > 0"),
        ((1, 1.0, 1, 1), {}, TypeError, "num_kv_heads must be an int"),
        ((1, 1, 1, 1), {"batch_size": -2}, ValueError, "batch_size must be > 0"),
        ((1, 1, 1, 1), {"dtype": "float32"}, TypeError, "dtype must be a torch.dtype"),
    ],
)
def test_kv_cache_bytes_rejects_bad_arguments(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        kv_cache_bytes(*args, **kwargs)
