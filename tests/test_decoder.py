"""The decoder for inference: cached equals uncached, shared key/value heads equal MHA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attention_book.efficient import KVCache, kv_cache_bytes
from attention_book.models.decoder import DecoderLM, GroupedQueryAttention
from attention_book.positions import apply_rotary, rotary_embedding


def model(kv_heads=2, seed=0, **kwargs):
    torch.manual_seed(seed)
    shape = {"d_model": 32, "num_heads": 4, "num_layers": 2, "d_ff": 64, "max_len": 40}
    return DecoderLM(23, num_kv_heads=kv_heads, **{**shape, **kwargs}).eval()


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_cached_logits_equal_the_full_forward_pass(kv_heads):
    lm = model(kv_heads)
    ids = torch.randint(0, 23, (3, 30), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = lm(ids)
        caches = lm.new_caches()
        chunks = [lm(ids[:, :9], caches), lm(ids[:, 9:12], caches)]  # prefill, then a chunk
        chunks += [lm(ids[:, t : t + 1], caches) for t in range(12, 30)]  # then one at a time
    torch.testing.assert_close(torch.cat(chunks, dim=1), full, atol=1e-5, rtol=0)
    assert all(c.length == 30 for c in caches)


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_greedy_tokens_are_the_same_with_and_without_the_cache(kv_heads):
    lm = model(kv_heads, seed=2)
    prompt = torch.randint(0, 23, (2, 5), generator=torch.Generator().manual_seed(3))
    cached = lm.generate(prompt, 30)
    assert cached.shape == (2, 35) and torch.equal(cached[:, :5], prompt)
    assert torch.equal(cached, lm.generate(prompt, 30, use_cache=False))


def test_generate_matches_a_step_by_step_argmax():
    lm = model(1, seed=4)
    ids = torch.tensor([[3, 4, 5]])
    with torch.no_grad():
        for _ in range(6):
            ids = torch.cat([ids, lm(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(lm.generate(ids[:, :3], 6), ids)


def test_the_future_never_changes_the_past():
    lm = model(2, seed=5)
    ids = torch.randint(0, 23, (2, 12), generator=torch.Generator().manual_seed(6))
    changed = ids.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 23
    with torch.no_grad():
        torch.testing.assert_close(lm(ids)[:, :7], lm(changed)[:, :7])
        assert not torch.allclose(lm(ids)[:, 7:], lm(changed)[:, 7:])


def reference_attention(attn, x):
    """Causal attention with repeated key/value heads, by PyTorch's SDPA."""
    b, n, _ = x.shape
    h, h_kv, d = attn.num_heads, attn.num_kv_heads, attn.d_head
    q = attn.q_proj(x).view(b, n, h, d).transpose(1, 2)
    k = attn.k_proj(x).view(b, n, h_kv, d).transpose(1, 2)
    v = attn.v_proj(x).view(b, n, h_kv, d).transpose(1, 2)
    cos, sin = rotary_embedding(n, d)
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    k = k[:, torch.arange(h) // (h // h_kv)]  # query head i reads key/value head i // group
    v = v[:, torch.arange(h) // (h // h_kv)]
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return attn.out_proj(out.transpose(1, 2).reshape(b, n, h * d))


@pytest.mark.parametrize("kv_heads", [6, 3, 2, 1])
def test_grouped_query_attention_against_pytorch(kv_heads):
    torch.manual_seed(7)
    attn = GroupedQueryAttention(48, 6, kv_heads)
    x = torch.randn(2, 10, 48)
    with torch.no_grad():
        ours = attn(x, rotary_embedding(10, 8))
        torch.testing.assert_close(ours, reference_attention(attn, x), atol=1e-5, rtol=0)
        cache = KVCache(10)
        cos, sin = rotary_embedding(10, 8)
        steps = [attn(x[:, :4], (cos[:4], sin[:4]), cache)]  # a prompt of 4, then one at a time
        steps += [
            attn(x[:, t : t + 1], (cos[t : t + 1], sin[t : t + 1]), cache) for t in range(4, 10)
        ]
        torch.testing.assert_close(torch.cat(steps, dim=1), ours, atol=1e-5, rtol=0)


def test_with_as_many_key_value_heads_as_queries_it_is_multi_head_attention():
    torch.manual_seed(8)
    attn = GroupedQueryAttention(32, 4)  # num_kv_heads defaults to num_heads
    assert attn.num_kv_heads == 4 and attn.k_proj.out_features == 32
    mha = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(
            torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        )
        mha.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        mha.out_proj.weight.copy_(attn.out_proj.weight)
        mha.out_proj.bias.copy_(attn.out_proj.bias)
        x = torch.randn(2, 9, 32)
        no_rotation = (torch.ones(9, 4), torch.zeros(9, 4))  # angle 0: RoPE does nothing
        mask = ~torch.ones(9, 9, dtype=torch.bool).tril()  # PyTorch: True = may not attend
        want, _ = mha(x, x, x, attn_mask=mask)
        torch.testing.assert_close(attn(x, no_rotation), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
def test_cache_bytes_follow_the_formula(kv_heads):
    lm = model(kv_heads)
    caches = lm.new_caches(17)
    with torch.no_grad():
        lm(torch.zeros(3, 17, dtype=torch.long), caches)
    measured = sum(c.nbytes for c in caches)
    assert measured == kv_cache_bytes(2, kv_heads, 8, 17, batch_size=3)
    assert measured == 2 * 2 * kv_heads * 8 * 17 * 3 * 4
    assert sum(p.numel() for p in lm.blocks[0].attn.k_proj.parameters()) == 32 * kv_heads * 8 + (
        kv_heads * 8
    )


def test_the_model_follows_its_dtype():
    lm = model(2).double()
    ids = torch.randint(0, 23, (1, 6))
    assert lm(ids).dtype == torch.float64
    assert torch.equal(lm.generate(ids, 4), lm.generate(ids, 4, use_cache=False))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"kv_heads": 3}, ValueError, "num_heads must be divisible by num_kv_heads"),
        ({"kv_heads": 0}, ValueError, "num_kv_heads must be > 0"),
        ({"kv_heads": 8}, ValueError, "divisible by num_kv_heads"),
        ({"d_model": 30}, ValueError, "d_model must be divisible by num_heads"),
        ({"d_model": 12}, ValueError, "even head size"),
        ({"max_len": 0}, ValueError, "max_len must be > 0"),
        ({"num_layers": 1.5}, TypeError, "num_layers must be an int"),
    ],
)
def test_bad_shapes_are_rejected(kwargs, error, message):
    with pytest.raises(error, match=message):
        model(**{"kv_heads": 2, **kwargs})


def test_bad_inputs_are_rejected():
    lm = model(2)
    with pytest.raises(ValueError, match=r"must lie in \[0, vocab_size=23\)"):
        lm(torch.tensor([[1, 23]]))
    with pytest.raises(ValueError, match="torch.long token ids"):
        lm(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="more than max_len=40"):
        lm(torch.zeros(1, 41, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one position"):
        lm(torch.zeros(1, 0, dtype=torch.long))
    caches = lm.new_caches()
    lm(torch.zeros(1, 35, dtype=torch.long), caches)
    with pytest.raises(ValueError, match="fit after the 35 cached ones within max_len=40"):
        lm(torch.zeros(1, 6, dtype=torch.long), caches)
    with pytest.raises(TypeError, match="a list of 2 KVCache"):
        lm(torch.zeros(1, 1, dtype=torch.long), caches[:1])
    uneven = lm.new_caches()
    lm(torch.zeros(1, 2, dtype=torch.long), uneven)
    uneven[0].reset()
    with pytest.raises(ValueError, match="as many positions"):
        lm(torch.zeros(1, 1, dtype=torch.long), uneven)
    with pytest.raises(ValueError, match="more than max_len=40"):
        lm.generate(torch.zeros(1, 30, dtype=torch.long), 11)
    with pytest.raises(ValueError, match="prompt must be"):
        lm.generate(torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="new_tokens must be > 0"):
        lm.generate(torch.zeros(1, 3, dtype=torch.long), 0)
    with pytest.raises(TypeError, match="use_cache must be a bool"):
        lm.generate(torch.zeros(1, 3, dtype=torch.long), 2, use_cache=1)


class _RecordingCache(KVCache):
    """A KVCache subclass, to check that new_caches asks the attention module for its cache."""


class _HalfRotaryAttention(GroupedQueryAttention):
    """Multi-head attention that asks for rotary tables of half the head size."""

    rotary_dim = 4

    def __init__(self, d_model: int, num_heads: int) -> None:
        super().__init__(d_model, num_heads)
        self.seen_widths: list[int] = []

    def forward(self, x, rotary, cache=None):
        self.seen_widths.append(rotary[0].shape[-1])
        full = rotary_embedding(64, self.d_head)  # the model's tables must be rotary_dim wide
        assert rotary[0].shape[-1] == self.rotary_dim // 2
        return super().forward(x, (full[0][: x.shape[1]], full[1][: x.shape[1]]), cache)

    def new_cache(self, max_len: int) -> KVCache:
        return _RecordingCache(max_len)


def test_an_attention_factory_replaces_every_layer_and_its_cache():
    torch.manual_seed(0)
    lm = DecoderLM(
        23,
        d_model=32,
        num_heads=4,
        num_layers=2,
        max_len=40,
        attention=lambda i: _HalfRotaryAttention(32, 4),
    )
    assert lm.rotary_dim == 4 and lm.rotary_cos.shape == (40, 2)
    assert all(isinstance(block.attn, _HalfRotaryAttention) for block in lm.blocks)
    assert all(isinstance(c, _RecordingCache) for c in lm.new_caches())
    ids = torch.randint(0, 23, (2, 5))
    assert torch.equal(lm.generate(ids, 3), lm.generate(ids, 3, use_cache=False))
    assert set(lm.blocks[0].attn.seen_widths) == {2}


def test_the_factory_gets_each_layer_index():
    seen = []

    def build(i):
        seen.append(i)
        return GroupedQueryAttention(16, 2)

    DecoderLM(11, d_model=16, num_heads=2, num_layers=3, attention=build)
    assert seen == [0, 1, 2]


def _mixed_rotary_dims(layer):
    """Layer 0 wants the head size, layer 1 half of it."""
    return _HalfRotaryAttention(16, 2) if layer else GroupedQueryAttention(16, 2)


@pytest.mark.parametrize(
    ("attention", "error", "message"),
    [
        (3, TypeError, "attention must be a callable"),
        (lambda i: "not a module", TypeError, r"attention\(0\) must return an nn.Module"),
        (_mixed_rotary_dims, ValueError, "same rotary_dim"),
    ],
)
def test_bad_attention_factories_are_rejected(attention, error, message):
    with pytest.raises(error, match=message):
        DecoderLM(11, d_model=16, num_heads=2, num_layers=2, attention=attention)
