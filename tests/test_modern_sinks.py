"""``modern.sinks``: the sink softmax, the sink cache and streaming, against plain references."""

import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from attention_book.efficient import KVCache
from attention_book.models.decoder import DecoderLM, GroupedQueryAttention
from attention_book.modern import SinkAttention, SinkCache, copy_stream, softmax_with_sink
from attention_book.positions import rotary_embedding


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def kept(t, num_sinks, window):
    """The plain rule: the first num_sinks tokens, then the last window of the others."""
    return list(range(min(t, num_sinks))) + list(range(max(num_sinks, t - window), t))


# --- softmax_with_sink -------------------------------------------------------------------


@given(
    st.integers(1, 3), st.integers(1, 4), st.integers(1, 6), st.floats(-5, 5), st.integers(0, 99)
)
@settings(max_examples=40, deadline=None)
def test_softmax_with_sink_is_a_softmax_over_one_more_column(heads, n, m, sink, seed):
    scores = rand(2, heads, n, m, seed=seed)
    logits = sink + rand(heads, 1, 1, seed=seed + 1)
    full = torch.softmax(torch.cat([scores, logits.expand(2, heads, n, 1)], dim=-1), dim=-1)
    w = softmax_with_sink(scores, logits)
    torch.testing.assert_close(w, full[..., :-1])
    assert (w.sum(-1) < 1).all() and (w >= 0).all()
    torch.testing.assert_close(
        softmax_with_sink(scores, sink), softmax_with_sink(scores, sink + 0 * logits)
    )


def test_softmax_with_sink_limits():
    scores = rand(3, 5)
    torch.testing.assert_close(softmax_with_sink(scores, -math.inf), torch.softmax(scores, -1))
    # softmax plus one: exp(s) / (1 + sum exp(s))
    torch.testing.assert_close(
        softmax_with_sink(scores, 0.0), scores.exp() / (1 + scores.exp().sum(-1, keepdim=True))
    )
    masked = torch.full((2, 4), -math.inf)
    assert torch.equal(softmax_with_sink(masked, 0.0), torch.zeros(2, 4))  # no NaN
    big = softmax_with_sink(torch.tensor([1000.0, 1000.0]), 1000.0)
    torch.testing.assert_close(big, torch.tensor([1 / 3, 1 / 3]))


def test_softmax_with_sink_gradient_reaches_the_sink_logit():
    logit = torch.zeros(3, 1, 1, requires_grad=True)
    softmax_with_sink(rand(2, 3, 4, 5).float(), logit).sum().backward()
    assert logit.grad is not None and (logit.grad < 0).all()  # a larger sink takes weight away


def test_softmax_with_sink_errors():
    with pytest.raises(
        ValueError, match=r"sink_logit must broadcast to \(2, 3, 4, 1\).*got \(5,\)"
    ):
        softmax_with_sink(rand(2, 3, 4, 6), torch.zeros(5))
    with pytest.raises(TypeError, match="sink_logit must be a number or a tensor, got str"):
        softmax_with_sink(rand(2, 3), "0")
    with pytest.raises(TypeError, match="scores must be a torch.Tensor"):
        softmax_with_sink([1.0], 0.0)


# --- SinkCache ---------------------------------------------------------------------------


@given(st.integers(0, 4), st.integers(1, 6), st.integers(0, 20))
@settings(max_examples=60, deadline=None)
def test_sink_cache_keeps_the_sinks_and_the_window(num_sinks, window, t):
    cache = SinkCache(num_sinks, window)
    for i in range(t):  # key i holds the number i: the cache's contents name the positions
        keys, values = cache.update(
            torch.full((2, 1, 1), float(i)), torch.full((2, 1, 3), -float(i))
        )
    assert cache.positions == kept(t, num_sinks, window)
    assert cache.length == len(cache.positions) <= num_sinks + window
    if t:
        assert keys[0, :, 0].tolist() == cache.positions
        assert values[1, :, 2].tolist() == [-p for p in cache.positions]


def test_sink_cache_eviction_order():
    cache, order = SinkCache(2, 3), []
    for i in range(8):
        cache.update(torch.full((1, 1), float(i)), torch.zeros(1, 1))
        order.append(list(cache.positions))
    assert order == [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4],
                     [0, 1, 3, 4, 5], [0, 1, 4, 5, 6], [0, 1, 5, 6, 7]]  # fmt: skip
    assert SinkCache(0, 3).max_len == 3 and cache.max_len == 5
    assert cache.nbytes == 2 * 5 * 4  # storage for num_sinks + window positions
    cache.reset()
    assert (cache.length, cache.positions, cache.seen) == (0, [], 0)


def test_sink_cache_takes_a_chunk_while_it_fits():
    cache = SinkCache(1, 4)
    keys, _ = cache.update(torch.arange(3.0)[:, None], torch.zeros(3, 1))
    assert keys[:, 0].tolist() == [0, 1, 2] and cache.positions == [0, 1, 2]
    keys, _ = cache.update(torch.tensor([[3.0], [4.0]]), torch.zeros(2, 1))  # exactly full
    with pytest.raises(
        ValueError, match=r"k must hold one position at a time.*holds 5 of 5, got k \(2, 1\)"
    ):
        cache.update(torch.zeros(2, 1), torch.zeros(2, 1))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_sinks": -1, "window": 3}, ValueError, "num_sinks must be >= 0, got -1"),
        ({"num_sinks": 4, "window": 0}, ValueError, "window must be >= 1, got 0"),
        ({"num_sinks": 4, "window": -2}, ValueError, "window must be >= 1, got -2"),
        ({"num_sinks": 1.0, "window": 3}, TypeError, "num_sinks must be an int, got float"),
        ({"num_sinks": 1, "window": True}, TypeError, "window must be an int, got bool"),
    ],
)
def test_sink_cache_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        SinkCache(**kwargs)


# --- SinkAttention -----------------------------------------------------------------------


def _pair(d_model, heads, kv_heads, seed=0, learned_sink=False):
    torch.manual_seed(seed)
    attn = SinkAttention(d_model, heads, kv_heads, learned_sink=learned_sink).double()
    return attn


def _rotary(start, n, d_head):
    cos, sin = rotary_embedding(start + n, d_head, dtype=torch.float64)
    return cos[start:], sin[start:]


@given(st.sampled_from([(2, 1), (2, 2), (4, 2), (4, 1)]), st.integers(1, 7), st.integers(0, 99))
@settings(max_examples=8, deadline=None)
def test_sink_attention_without_a_sink_cache_is_grouped_query_attention(heads, n, seed):
    h, h_kv = heads
    ours = _pair(8 * h, h, h_kv, seed)
    plain = GroupedQueryAttention(8 * h, h, h_kv).double()
    plain.load_state_dict(ours.state_dict())
    x = rand(2, n, 8 * h, seed=seed)
    torch.testing.assert_close(ours(x, _rotary(0, n, 8)), plain(x, _rotary(0, n, 8)))
    cache, steps = KVCache(n), []
    for i in range(n):  # with a plain cache too, one position at a time
        steps.append(ours(x[:, i : i + 1], _rotary(i, 1, 8), cache))
    torch.testing.assert_close(torch.cat(steps, 1), plain(x, _rotary(0, n, 8)))


@given(
    st.integers(0, 3),
    st.integers(1, 5),
    st.integers(1, 14),
    st.sampled_from([(2, 1), (2, 2), (4, 2)]),
    st.booleans(),
    st.integers(0, 99),
)
@settings(max_examples=40, deadline=None)
def test_streaming_equals_full_attention_over_the_kept_tokens(
    num_sinks, window, steps, heads, learned_sink, seed
):
    h, h_kv = heads
    attn = _pair(4 * h, h, h_kv, seed, learned_sink)
    if learned_sink:
        torch.nn.init.normal_(attn.sink_logit)
    x = rand(3, steps, 4 * h, seed=seed)
    cache = SinkCache(num_sinks, window)
    for t in range(steps):
        # DecoderLM passes the tables of position cache.length; the cache overrides them
        out = attn(x[:, t : t + 1], _rotary(min(cache.length, num_sinks + window - 1), 1, 4), cache)
        keep = kept(t + 1, num_sinks, window)
        assert cache.positions == keep
        # the kept tokens as a fresh sequence at positions 0 .. len(keep) - 1, no cache
        full = attn(x[:, keep], _rotary(0, len(keep), 4))
        torch.testing.assert_close(out, full[:, -1:])


def test_positions_are_reassigned_inside_the_cache():
    """After eviction the newest token sits at index num_sinks + window - 1, not at t."""
    attn = _pair(8, 2, 2)
    x = rand(1, 12, 8)
    cache = SinkCache(1, 3)
    for t in range(12):
        out = attn(x[:, t : t + 1], _rotary(0, 1, 4), cache)
    # the same four tokens at positions 0, 1, 2, 3 (what the cache does) ...
    torch.testing.assert_close(out, attn(x[:, [0, 9, 10, 11]], _rotary(0, 4, 4))[:, -1:])
    # ... but not at their stream positions 0, 9, 10, 11 (what a cache without reassignment does)
    cos, sin = rotary_embedding(12, 4, dtype=torch.float64)
    stream = attn(x[:, [0, 9, 10, 11]], (cos[[0, 9, 10, 11]], sin[[0, 9, 10, 11]]))[:, -1:]
    assert (out - stream).abs().max() > 1e-3


def test_learned_sink_logit_is_per_head_and_trains():
    attn = SinkAttention(8, 4, learned_sink=True)
    assert attn.sink_logit.shape == (4,) and torch.equal(attn.sink_logit.detach(), torch.zeros(4))
    assert SinkAttention(8, 4).sink_logit is None
    attn.keep_weights = True
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    attn(x, rotary_embedding(5, 2)).sum().backward()
    assert attn.sink_logit.grad is not None and attn.sink_logit.grad.abs().sum() > 0
    assert attn.weights.shape == (2, 4, 5, 5)
    assert (attn.weights.sum(-1) < 1).all()  # the sink took a share
    with torch.no_grad():
        attn.sink_logit.fill_(-1e4)
    plain = SinkAttention(8, 4)
    plain.load_state_dict({k: v for k, v in attn.state_dict().items() if k != "sink_logit"})
    torch.testing.assert_close(attn(x, rotary_embedding(5, 2)), plain(x, rotary_embedding(5, 2)))
    with pytest.raises(TypeError, match="learned_sink must be a bool, got int"):
        SinkAttention(8, 4, learned_sink=1)


def test_a_decoder_streams_far_past_its_max_len():
    ids = torch.randint(3, 11, (2, 30), generator=torch.Generator().manual_seed(1))
    for layers in (1, 2):
        torch.manual_seed(0)
        model = DecoderLM(11, d_model=16, num_heads=2, num_layers=layers, max_len=8,
                          attention=lambda i: SinkAttention(16, 2)).eval()  # fmt: skip
        assert all(type(c) is KVCache for c in model.new_caches())
        caches = [SinkCache(2, 5) for _ in range(layers)]
        with torch.no_grad():
            for t in range(30):  # 30 positions through a model of max_len 8
                logits = model(ids[:, t : t + 1], caches)
            assert [c.positions for c in caches] == [kept(30, 2, 5)] * layers
            gap = (logits - model(ids[:, kept(30, 2, 5)])[:, -1:]).abs().max()
        # one layer: the kept tokens, recomputed alone, give the same logits; with two, the
        # cached keys of layer 2 still carry what the evicted tokens told layer 1
        assert gap < 1e-5 if layers == 1 else gap > 1e-4


# --- copy_stream -------------------------------------------------------------------------


def test_copy_stream_copies_after_every_marker():
    rows = copy_stream(200, 40, vocab_size=12, rate=0.3, lag=2, seed=3)
    assert rows.shape == (200, 41) and rows.dtype == torch.long
    assert (rows[:, 0] == 1).all() and rows[:, 1:].min() >= 3 and rows[:, 1:].max() < 12
    assert torch.equal(rows, copy_stream(200, 40, vocab_size=12, rate=0.3, lag=2, seed=3))
    assert not torch.equal(rows, copy_stream(200, 40, vocab_size=12, rate=0.3, lag=2, seed=4))
    markers = 0
    for row in rows.tolist():
        for t, token in enumerate(row[:-1]):
            if token == 3:
                markers += 1
                assert t - 2 >= 1 and row[t - 2] >= 4  # a word, not BOS or a marker
                assert row[t + 1] == row[t - 2]  # the copy
                assert 3 not in row[max(1, t - 3) : t]  # markers apart
    assert 0.1 * 200 * 40 < markers < 0.3 * 200 * 40
    words = copy_stream(1, 1000, vocab_size=12, rate=0.01, seed=0)[0, 1:]
    assert set(words.tolist()) >= set(range(4, 12))  # every word occurs


def test_copy_stream_errors():
    with pytest.raises(ValueError, match="vocab_size must be >= 6, got 5"):
        copy_stream(2, 5, vocab_size=5)
    with pytest.raises(ValueError, match="length must be > 0, got 0"):
        copy_stream(2, 0)
    with pytest.raises(ValueError, match="rate must be < 1, got 1.5"):
        copy_stream(2, 5, rate=1.5)
    with pytest.raises(ValueError, match="lag must be > 0, got 0"):
        copy_stream(2, 5, lag=0)
    with pytest.raises(TypeError, match="num_sequences must be an int"):
        copy_stream(2.0, 5)
