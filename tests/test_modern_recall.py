"""``modern.recall``: the recall data, the state bytes of each layer kind, the layers."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attention_book import modern
from attention_book.models.decoder import DecoderLM


@settings(max_examples=25, deadline=None)
@given(
    pairs=st.integers(1, 10),
    extra=st.integers(0, 5),
    vocab=st.integers(21, 40),
    data=st.data(),
)
def test_associative_recall_layout(pairs, extra, vocab, data):
    queries = data.draw(st.integers(1, pairs))
    length = 2 * pairs + queries + extra
    gen = torch.Generator().manual_seed(pairs + vocab)
    x, y = modern.associative_recall(
        5, pairs, num_queries=queries, vocab_size=vocab, seq_len=length, generator=gen
    )
    assert x.shape == y.shape == (5, length) and x.dtype == y.dtype == torch.long
    num_keys = (vocab - 1) // 2
    for row, target in zip(x, y, strict=True):
        keys, values = row[: 2 * pairs : 2], row[1 : 2 * pairs : 2]
        assert len(set(keys.tolist())) == pairs  # distinct keys
        assert ((keys >= 1) & (keys <= num_keys)).all()
        assert ((values > num_keys) & (values < vocab)).all()
        asked = row[2 * pairs : 2 * pairs + queries]
        assert len(set(asked.tolist())) == queries
        value_of = dict(zip(keys.tolist(), values.tolist(), strict=True))
        want = [value_of[k] for k in asked.tolist()]
        assert target[2 * pairs : 2 * pairs + queries].tolist() == want
        assert (target[: 2 * pairs] == -100).all() and (target[2 * pairs + queries :] == -100).all()
        assert (row[2 * pairs + queries :] == 0).all()


def test_associative_recall_is_seeded():
    a = modern.associative_recall(
        3, 4, num_queries=2, vocab_size=20, seq_len=12, generator=torch.Generator().manual_seed(1)
    )
    b = modern.associative_recall(
        3, 4, num_queries=2, vocab_size=20, seq_len=12, generator=torch.Generator().manual_seed(1)
    )
    assert all(torch.equal(s, t) for s, t in zip(a, b, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_examples": 0}, "num_examples"),
        ({"num_pairs": 0}, "num_pairs"),
        ({"num_queries": 0}, "num_queries"),
        ({"vocab_size": 2}, "vocab_size must be > 2"),
        ({"num_pairs": 10, "vocab_size": 19}, "num_pairs must be at most the 9 keys"),
        ({"num_queries": 5}, "num_queries must be at most num_pairs=4"),
        ({"seq_len": 9}, "seq_len must hold 2 \\* num_pairs \\+ num_queries = 10"),
    ],
)
def test_associative_recall_errors(kwargs, message):
    args = {"num_examples": 2, "num_pairs": 4, "num_queries": 2, "vocab_size": 20, "seq_len": 12}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        modern.associative_recall(args.pop("num_examples"), args.pop("num_pairs"), **args)


@given(
    heads=st.integers(1, 8),
    dim=st.integers(1, 64),
    length=st.integers(1, 500),
    window=st.integers(1, 100),
)
def test_layer_state_bytes_formulas(heads, dim, length, window):
    assert modern.layer_state_bytes("softmax", heads, dim, length) == 2 * heads * dim * length * 4
    got = modern.layer_state_bytes("window", heads, dim, length, window=window)
    assert got == 2 * heads * dim * min(window, length) * 4
    for kind in modern.RECURRENT_KINDS:
        got = modern.layer_state_bytes(kind, heads, dim, length, dtype=torch.bfloat16)
        assert got == heads * dim * dim * 2  # the length does not enter


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("softmax", 0, 4, 4), {}, ValueError, "num_heads"),
        (("softmax", 1, 0, 4), {}, ValueError, "head_dim"),
        (("softmax", 1, 4, 0), {}, ValueError, "length"),
        (("window", 1, 4, 4), {}, ValueError, "window must be given for kind 'window' only"),
        (("delta", 1, 4, 4), {"window": 3}, ValueError, "window must be given"),
        (("window", 1, 4, 4), {"window": 0}, ValueError, "window"),
        (("mamba", 1, 4, 4), {}, ValueError, "kind must be 'softmax', 'window' or one of"),
        (("delta", 1, 4, 4), {"dtype": "float32"}, TypeError, "dtype must be a torch.dtype"),
    ],
)
def test_layer_state_bytes_errors(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        modern.layer_state_bytes(*args, **kwargs)


@pytest.mark.parametrize("kind", modern.KINDS)
def test_layers_are_causal_and_train(kind):
    torch.manual_seed(0)
    window = 3 if kind == "window" else None
    layer = modern.RecurrentAttention(16, 2, kind, window=window)
    x = torch.randn(2, 9, 16)
    out = layer(x)
    assert out.shape == (2, 9, 16)
    changed = x.clone()
    changed[:, 6:] += 1.0  # the future changes
    assert torch.allclose(layer(changed)[:, :6], out[:, :6], atol=1e-6)
    assert not torch.allclose(layer(changed)[:, 6:], out[:, 6:], atol=1e-3)
    out.sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


def _features(layer, x):
    b, n, _ = x.shape
    qkv = F.silu(layer.conv(F.pad(layer.qkv(x).transpose(1, 2), (3, 0)))).transpose(1, 2)
    return [t.view(b, n, layer.num_heads, -1).transpose(1, 2) for t in qkv.chunk(3, -1)]


def test_delta_kind_matches_a_step_by_step_reference():
    torch.manual_seed(1)
    layer = modern.RecurrentAttention(8, 2, "gated_delta").double()
    x = torch.randn(1, 7, 8, dtype=torch.float64)
    q, k, v = _features(layer, x)
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    beta_logit, decay_logit = layer.gate(x).transpose(1, 2).chunk(2, dim=1)
    beta, decay = torch.sigmoid(beta_logit), torch.sigmoid(decay_logit)
    state = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    outs = []
    for t in range(7):
        kt, vt = k[:, :, t], v[:, :, t]
        eye = torch.eye(4, dtype=torch.float64)
        rank1 = eye - beta[:, :, t, None, None] * kt[..., :, None] * kt[..., None, :]
        state = decay[:, :, t, None, None] * state @ rank1
        state = state + beta[:, :, t, None, None] * vt[..., :, None] * kt[..., None, :]
        outs.append((state @ q[:, :, t, :, None])[..., 0])
    want = layer.out(torch.stack(outs, 2).transpose(1, 2).reshape(1, 7, 8))
    assert torch.allclose(layer(x), want, atol=1e-10)


def test_linear_kind_is_normalised_causal_linear_attention():
    torch.manual_seed(2)
    layer = modern.RecurrentAttention(8, 2, "linear").double()
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    q, k, v = _features(layer, x)
    q, k = F.elu(q) + 1, F.elu(k) + 1
    scores = (q @ k.transpose(-1, -2)).tril()  # (B, H, N, N)
    out = (scores @ v) / (scores.sum(-1, keepdim=True) + 1e-6)
    want = layer.out(out.transpose(1, 2).reshape(1, 6, 8))
    assert torch.allclose(layer(x), want, atol=1e-8)


def test_softmax_kind_is_causal_softmax_attention():
    torch.manual_seed(3)
    layer = modern.RecurrentAttention(8, 2, "softmax").double()
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    q, k, v = _features(layer, x)
    scores = (q @ k.transpose(-1, -2)) / 2.0  # sqrt(head_dim = 4)
    scores = scores.masked_fill(torch.ones(6, 6).triu(1).bool(), float("-inf"))
    want = layer.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(1, 6, 8))
    assert torch.allclose(layer(x), want, atol=1e-10)


def test_layers_plug_into_the_decoder():
    lm = DecoderLM(
        20,
        d_model=16,
        num_heads=2,
        num_layers=2,
        d_ff=32,
        max_len=12,
        attention=lambda i: modern.RecurrentAttention(16, 2, "softmax" if i else "delta"),
    )
    assert lm(torch.randint(0, 20, (3, 12))).shape == (3, 12, 20)
    with pytest.raises(NotImplementedError, match="without a cache"):
        lm.new_caches()


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((0, 2, "delta"), {}, "d_model"),
        ((16, 0, "delta"), {}, "num_heads"),
        ((15, 2, "delta"), {}, "d_model=15 must be divisible by num_heads=2"),
        ((16, 2, "mamba"), {}, "kind must be one of"),
        ((16, 2, "window"), {}, "window must be given for kind 'window' only"),
        ((16, 2, "softmax"), {"window": 4}, "window must be given"),
        ((16, 2, "window"), {"window": 0}, "window"),
    ],
)
def test_layer_errors(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        modern.RecurrentAttention(*args, **kwargs)


def test_forward_errors():
    layer = modern.RecurrentAttention(8, 2, "delta")
    with pytest.raises(ValueError, match=r"x must have shape \(B, N, d_model\), got \(4, 8\)"):
        layer(torch.randn(4, 8))
    with pytest.raises(ValueError, match="keeps no cache"):
        layer(torch.randn(1, 4, 8), None, object())
