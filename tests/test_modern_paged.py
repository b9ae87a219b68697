"""``modern.paged``: the paged KV cache against a contiguous one, its allocator, sharing and
copy-on-write, its errors, and the serving simulator against hand-worked streams."""

import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from attention_book import efficient, modern
from attention_book.attention import causal_mask
from attention_book.models.decoder import DecoderLM
from attention_book.modern import OutOfBlocksError, PagedKVCache, PagedSequenceCache


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def cache(num_blocks=8, block_size=4, heads=2, d=3):
    return PagedKVCache(num_blocks, block_size, heads, d, dtype=torch.float64)


def plain_attention(q, k, v):
    """softmax(q k^T / sqrt(d) + causal mask aligned to the end) v, query heads in groups."""
    group = q.shape[0] // k.shape[0]
    k, v = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    mask = causal_mask(q.shape[1], k.shape[1])
    return torch.softmax(scores.masked_fill(~mask, -math.inf), -1) @ v


# --- paged against contiguous ---------------------------------------------------------------


@given(
    heads=st.integers(1, 3),
    group=st.integers(1, 2),
    d=st.integers(1, 5),
    block_size=st.integers(1, 6),
    chunks=st.lists(st.integers(1, 7), min_size=1, max_size=5),
    seed=st.integers(0, 1000),
)
@settings(max_examples=40, deadline=None)
def test_paged_matches_a_contiguous_cache(heads, group, d, block_size, chunks, seed):
    total = sum(chunks)
    paged = PagedKVCache(
        2 * math.ceil(total / block_size) + 2, block_size, heads, d, dtype=torch.float64
    )
    contiguous = efficient.KVCache(total)
    k, v = rand(heads, total, d, seed=seed), rand(heads, total, d, seed=seed + 1)
    paged.new_sequence("a")
    paged.new_sequence("other")  # interleaved: the blocks of "a" are not consecutive
    start = 0
    for n in chunks:
        paged.append("other", rand(heads, 1, d, seed=start), rand(heads, 1, d, seed=start))
        paged.append("a", k[:, start : start + n], v[:, start : start + n])
        keys, values = contiguous.update(k[:, start : start + n], v[:, start : start + n])
        start += n
        got_k, got_v = paged.gather("a")
        assert torch.equal(got_k, keys) and torch.equal(got_v, values)
        q = rand(heads * group, n, d, seed=seed + 2)
        torch.testing.assert_close(paged.attend("a", q), plain_attention(q, keys, values))
    assert len(paged.block_table("a")) == math.ceil(total / block_size)  # no block wasted


def test_token_by_token_equals_one_chunk():
    one, many = cache(), cache()
    k, v = rand(2, 7, 3), rand(2, 7, 3, seed=1)
    one.new_sequence(0)
    one.append(0, k, v)
    many.new_sequence(0)
    for t in range(7):
        many.append(0, k[:, t : t + 1], v[:, t : t + 1])
    assert one.block_table(0) == many.block_table(0) == [0, 1]
    assert torch.equal(one.gather(0)[0], many.gather(0)[0])
    assert torch.equal(one.gather(0)[1], v)


def test_greedy_generation_through_the_paged_cache_is_token_for_token_the_same():
    torch.manual_seed(0)
    lm = DecoderLM(50, d_model=16, num_heads=4, num_kv_heads=2, num_layers=2, max_len=40).eval()
    layers = [PagedKVCache(12, 4, 2, 4) for _ in range(2)]  # room for both at once
    prompts = {"a": torch.tensor([[5, 7, 9]]), "b": torch.tensor([[3, 4, 8, 11, 2, 6]])}
    ids, logits = {}, {}
    with torch.no_grad():
        for name, prompt in prompts.items():
            for layer in layers:
                layer.new_sequence(name)
            views = [PagedSequenceCache(layer, name) for layer in layers]
            logits[name], ids[name] = lm(prompt, views)[:, -1], prompt
        for _ in range(10):  # the two requests decoded in turns, their blocks interleaved
            for name in prompts:
                token = logits[name].argmax(-1, keepdim=True)
                ids[name] = torch.cat([ids[name], token], 1)
                views = [PagedSequenceCache(layer, name) for layer in layers]
                logits[name] = lm(token, views)[:, -1]
    for name, prompt in prompts.items():
        assert torch.equal(ids[name], lm.generate(prompt, 10))
        assert layers[0].length(name) == prompt.shape[1] + 10
    table_a, table_b = layers[0].block_table("a"), layers[0].block_table("b")
    assert not set(table_a) & set(table_b)  # no block shared, and "a"'s blocks interleaved:
    assert table_a != list(range(table_a[0], table_a[0] + len(table_a)))


def test_sequence_view_is_a_kv_cache():
    paged = cache()
    paged.new_sequence("s")
    view = PagedSequenceCache(paged, "s")
    assert isinstance(view, efficient.KVCache) and view.length == 0 and view.nbytes == 0
    keys, values = view.update(rand(1, 2, 5, 3), rand(1, 2, 5, 3, seed=1))
    assert keys.shape == values.shape == (1, 2, 5, 3) and view.length == 5
    assert view.nbytes == 2 * paged.nbytes // 8  # two blocks of the eight
    view.length = 5  # DecoderLM never sets it; setting it to what it is changes nothing
    with pytest.raises(ValueError, match="length follows its blocks"):
        view.length = 0
    with pytest.raises(ValueError, match=r"k and v must be \(1, num_heads, n_new, d_head\)"):
        view.update(rand(2, 2, 1, 3), rand(2, 2, 1, 3))
    with pytest.raises(ValueError, match="seq_id 'nope' is not in the cache"):
        PagedSequenceCache(paged, "nope")


# --- the allocator, freeing and sharing -----------------------------------------------------


def test_blocks_come_from_the_free_list_and_go_back():
    paged = cache(num_blocks=5, block_size=2)
    for name in "ab":
        paged.new_sequence(name)
    paged.append("a", rand(2, 3, 3), rand(2, 3, 3))  # blocks 0, 1
    paged.append("b", rand(2, 1, 3), rand(2, 1, 3))  # block 2
    paged.append("a", rand(2, 1, 3), rand(2, 1, 3))  # fills block 1: no new block
    assert paged.block_table("a") == [0, 1] and paged.block_table("b") == [2]
    assert paged.free_list == [3, 4] and paged.ref_counts == [1, 1, 1, 0, 0]
    paged.free("a")
    assert paged.free_list == [3, 4, 0, 1] and paged.ref_counts == [0, 0, 1, 0, 0]
    paged.append("b", rand(2, 4, 3), rand(2, 4, 3))  # block 2 filled, then 3 and 4
    assert paged.block_table("b") == [2, 3, 4] and paged.free_list == [0, 1]
    with pytest.raises(ValueError, match="seq_id 'a' is not in the cache"):
        paged.gather("a")


def test_fork_shares_the_prompt_blocks_once():
    paged = cache(num_blocks=10, block_size=4)
    paged.new_sequence("first")
    prompt_k, prompt_v = rand(2, 10, 3), rand(2, 10, 3, seed=1)
    paged.append("first", prompt_k, prompt_v)  # 3 blocks, the last holding 2 of 4
    paged.fork("first", "second")
    assert paged.block_table("second") == paged.block_table("first") == [0, 1, 2]
    assert 10 - len(paged.free_list) == 3  # two requests, one prompt, three blocks
    assert paged.ref_counts[:3] == [2, 2, 2]
    # writing into the shared, partly filled last block copies it first
    paged.append("second", rand(2, 1, 3, seed=2), rand(2, 1, 3, seed=3))
    assert paged.block_table("second") == [0, 1, 3] and paged.block_table("first") == [0, 1, 2]
    assert paged.ref_counts[:4] == [2, 2, 1, 1]
    assert torch.equal(paged.gather("first")[0], prompt_k)  # the original is untouched
    assert torch.equal(paged.gather("second")[0][:, :10], prompt_k)
    # the first request writes into its own block, now unshared: no copy
    paged.append("first", rand(2, 2, 3, seed=4), rand(2, 2, 3, seed=5))
    assert paged.block_table("first") == [0, 1, 2]
    paged.free("first")
    assert paged.ref_counts[:4] == [1, 1, 0, 1] and torch.equal(
        paged.gather("second")[1][:, :10], prompt_v
    )


def test_a_full_shared_block_is_not_copied():
    paged = cache(num_blocks=4, block_size=2)
    paged.new_sequence("p")
    paged.append("p", rand(2, 4, 3), rand(2, 4, 3))
    paged.fork("p", "c")
    paged.append("c", rand(2, 1, 3), rand(2, 1, 3))
    assert paged.block_table("c") == [0, 1, 2] and paged.ref_counts == [2, 2, 1, 0]


# --- running out, and bad input ---------------------------------------------------------------


def snapshot(paged):
    return (
        {s: paged.block_table(s) for s in ("a", "b")},
        {s: paged.length(s) for s in ("a", "b")},
        list(paged.free_list),
        paged.ref_counts,
        paged.keys.clone(),
        paged.values.clone(),
    )


def same(x, y):
    return all(
        torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b
        for a, b in zip(x, y, strict=True)
    )


def test_out_of_blocks_is_a_clear_error_and_loses_nothing():
    paged = cache(num_blocks=4, block_size=2)
    paged.new_sequence("a")
    paged.append("a", rand(2, 3, 3), rand(2, 3, 3))  # 2 blocks
    paged.fork("a", "b")
    before = snapshot(paged)
    with pytest.raises(
        OutOfBlocksError,
        match=r"needs 3 free block\(s\) of 2 positions for 4 new"
        r" position\(s\), but only 2 of 4 are free; nothing was written",
    ):
        paged.append("a", rand(2, 4, 3), rand(2, 4, 3))  # 1 copy + 2 new blocks
    assert same(snapshot(paged), before)
    paged.append("a", rand(2, 3, 3), rand(2, 3, 3))  # 1 copy + 1 new: fits exactly
    assert paged.free_list == [] and paged.length("a") == 6 and paged.length("b") == 3
    before = snapshot(paged)
    assert paged.block_table("a") == [0, 2, 3] and paged.block_table("b") == [0, 1]
    with pytest.raises(OutOfBlocksError, match=r"needs 1 free block\(s\) .* only 0 of 4 are"):
        paged.append("b", rand(2, 2, 3), rand(2, 2, 3))
    assert same(snapshot(paged), before)
    paged.append("b", rand(2, 1, 3), rand(2, 1, 3))  # block 1 is b's alone now: no copy
    assert paged.block_table("b") == [0, 1] and paged.ref_counts == [2, 1, 1, 1]
    assert isinstance(OutOfBlocksError("x"), MemoryError)


@pytest.mark.parametrize("name", ["num_blocks", "block_size", "num_heads", "d_head"])
@pytest.mark.parametrize("bad", [0, -1])
def test_sizes_must_be_positive(name, bad):
    sizes = {"num_blocks": 4, "block_size": 2, "num_heads": 1, "d_head": 2, name: bad}
    with pytest.raises(ValueError, match=f"{name} must be > 0, got {bad}"):
        PagedKVCache(**sizes)


def test_bad_input_names_the_argument():
    with pytest.raises(TypeError, match="block_size must be an int, got float"):
        PagedKVCache(4, 2.0, 1, 2)
    with pytest.raises(TypeError, match="dtype must be a floating-point torch.dtype"):
        PagedKVCache(4, 2, 1, 2, dtype=torch.int64)
    paged = cache()
    paged.new_sequence("a")
    with pytest.raises(ValueError, match="seq_id 'a' is already in the cache"):
        paged.new_sequence("a")
    with pytest.raises(ValueError, match="seq_id 'a' is already in the cache"):
        paged.fork("a", "a")
    with pytest.raises(
        ValueError,
        match=r"k must be \(num_heads, n_new, d_head\) = \(2, n_new,"
        r" 3\), got \(3, 1, 3\)",
    ):
        paged.append("a", rand(3, 1, 3), rand(3, 1, 3))
    with pytest.raises(ValueError, match=r"v must be .* got \(2, 1, 2\)"):
        paged.append("a", rand(2, 1, 3), rand(2, 1, 2))
    with pytest.raises(ValueError, match=r"v must have at least 3 dimension\(s\), got shape"):
        paged.append("a", rand(2, 1, 3), rand(2, 1))
    with pytest.raises(ValueError, match=r"v must have k's shape \(2, 1, 3\), got \(2, 2, 3\)"):
        paged.append("a", rand(2, 1, 3), rand(2, 2, 3))
    with pytest.raises(TypeError, match="k must have the pool's dtype torch.float64"):
        paged.append("a", rand(2, 1, 3).float(), rand(2, 1, 3).float())
    with pytest.raises(TypeError, match="k must be a torch.Tensor, got list"):
        paged.append("a", [1.0], rand(2, 1, 3))
    paged.append("a", rand(2, 3, 3), rand(2, 3, 3))
    with pytest.raises(ValueError, match=r"q must be \(H_q, n, d_head\) .* got \(3, 1, 3\)"):
        paged.attend("a", rand(3, 1, 3))
    with pytest.raises(ValueError, match=r"1 <= n <= length=3 .* got \(2, 4, 3\)"):
        paged.attend("a", rand(2, 4, 3))


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.append("x", rand(2, 1, 3), rand(2, 1, 3)),
        lambda c: c.gather("x"),
        lambda c: c.attend("x", rand(2, 1, 3)),
        lambda c: c.free("x"),
        lambda c: c.fork("x", "y"),
        lambda c: c.block_table("x"),
        lambda c: c.length("x"),
    ],
)
def test_an_unknown_sequence_is_named(call):
    paged = cache()
    paged.new_sequence("a")
    with pytest.raises(
        ValueError,
        match=r"seq_id 'x' is not in the cache, which holds 1 "
        r"sequence\(s\): \['a'\]",
    ):
        call(paged)


# --- the serving simulator ----------------------------------------------------------------


def test_request_stream_is_seeded_sorted_and_within_bounds():
    stream = modern.request_stream(300, 50, 64, torch.Generator().manual_seed(3), (2, 20), (1, 60))
    again = modern.request_stream(300, 50, 64, torch.Generator().manual_seed(3), (2, 20), (1, 60))
    assert [(r.arrival, r.prompt, r.output) for r in stream] == [
        (r.arrival, r.prompt, r.output) for r in again
    ]
    assert [r.arrival for r in stream] == sorted(r.arrival for r in stream)
    assert all(0 <= r.arrival < 50 and 2 <= r.prompt <= 20 for r in stream)
    assert all(1 <= r.output and r.prompt + r.output <= 64 for r in stream)
    assert max(r.prompt + r.output for r in stream) == 64  # some outputs were cut to fit
    with pytest.raises(ValueError, match=r"prompt_len must be \(lo, hi\), 1 <= lo <= hi, got"):
        modern.request_stream(3, 5, 16, torch.Generator(), (4, 16))
    with pytest.raises(ValueError, match=r"output_len must be .* got \(0, 3\)"):
        modern.request_stream(3, 5, 16, torch.Generator(), (1, 4), (0, 3))
    with pytest.raises(ValueError, match="duration must be > 0"):
        modern.request_stream(3, 0, 16, torch.Generator())


def test_simulator_on_a_hand_worked_request():
    one = [modern.Request(arrival=1, prompt=3, output=2)]
    contiguous = modern.simulate_serving(one, memory=8, max_len=8)
    # step 0: nothing; step 1: admitted with 3, one token -> 4; step 2: 5, done and freed
    assert contiguous.used == [0, 4, 0] and contiguous.allocated == [0, 8, 0]
    assert contiguous.running == [0, 1, 1] and contiguous.used_share == 0.5
    paged = modern.simulate_serving(one, memory=8, max_len=8, block_size=2)
    assert paged.used == [0, 4, 0] and paged.allocated == [0, 4, 0] and paged.used_share == 1
    assert paged.preemptions == 0


def test_simulator_preempts_the_last_admitted_and_finishes_everything():
    two = [modern.Request(0, 2, 6), modern.Request(0, 2, 6)]
    paged = modern.simulate_serving(two, memory=8, max_len=8, block_size=2)
    # both hold 2 blocks of 2 after one step, all 4; at step 2 the first needs a fifth
    # block and the second, admitted last, goes back to the queue
    assert paged.running[:3] == [2, 2, 1] and paged.preemptions >= 1
    assert sum(paged.running) >= 12 and paged.used[-1] == 0
    assert max(paged.allocated) <= 8
    contiguous = modern.simulate_serving(two, memory=8, max_len=8)  # one at a time
    assert contiguous.running == [1] * 12 and contiguous.preemptions == 0


@given(seed=st.integers(0, 500), duration=st.integers(1, 200), block_size=st.integers(1, 32))
@settings(max_examples=15, deadline=None)
def test_simulator_invariants(seed, duration, block_size):
    stream = modern.request_stream(40, duration, 64, torch.Generator().manual_seed(seed), (1, 32))
    for size in (None, block_size):
        stats = modern.simulate_serving(stream, memory=256, max_len=64, block_size=size)
        assert all(u <= a <= 256 for u, a in zip(stats.used, stats.allocated, strict=True))
        assert stats.used[-1] == 0
        # every token generated at least once: one decoding step per output token
        assert sum(stats.running) >= sum(r.output for r in stream)
        assert (stats.preemptions == 0) <= (sum(stats.running) == sum(r.output for r in stream))
        if size is None:
            assert max(stats.running) <= 4 and stats.preemptions == 0
            contiguous_share = stats.used_share
    assert stats.used_share >= contiguous_share


def test_simulator_rejects_bad_input():
    with pytest.raises(ValueError, match="memory must hold max_len=8 positions or more, got 4"):
        modern.simulate_serving([], memory=4, max_len=8)
    with pytest.raises(ValueError, match="block_size must be > 0, got 0"):
        modern.simulate_serving([], memory=8, max_len=8, block_size=0)
    assert modern.simulate_serving([], memory=8, max_len=8).used == []


def test_simulator_sends_back_the_request_admitted_last():
    first, second = modern.Request(0, 2, 6), modern.Request(0, 2, 3)
    paged = modern.simulate_serving([first, second], memory=8, max_len=8, block_size=2)
    # step 2: the first needs a fifth block of 2; the second (4 positions) goes back and
    # waits until the first is done at step 5, then finishes in one step with its 4 + 1
    assert paged.used == [6, 8, 5, 6, 7, 0, 0] and paged.allocated == [8, 8, 6, 6, 8, 0, 0]
    assert paged.running == [2, 2, 1, 1, 1, 1, 1] and paged.preemptions == 1
