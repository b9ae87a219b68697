import pytest
import torch
import torch.nn.functional as F

from attention_book import corpora
from attention_book.data import PAD_ID
from attention_book.models.lm import (
    AttentionOnlyBlock,
    AttentionOnlyLM,
    prefix_matching_score,
    previous_token_score,
)
from attention_book.models.transformer import FeedForward
from attention_book.train import train


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope", "none"])
def test_shapes_weights_and_no_feed_forward(positions):
    torch.manual_seed(0)
    model = AttentionOnlyLM(
        11, d_model=16, num_heads=2, num_layers=3, max_len=9, positions=positions
    )
    ids = torch.randint(0, 11, (4, 9))
    logits = model(ids)
    assert logits.shape == (4, 9, 11)
    weights = model.attention_weights()
    assert weights.shape == (3, 4, 2, 9, 9)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4, 2, 9))
    assert (weights.triu(diagonal=1) == 0).all()  # nobody reads the future
    assert not any(isinstance(m, FeedForward) for m in model.modules())


def test_the_future_never_changes_the_past():
    torch.manual_seed(1)
    model = AttentionOnlyLM(13, d_model=16, num_heads=4, positions="rope")
    ids = torch.randint(0, 13, (2, 8))
    changed = ids.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 13
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_block_is_a_residual_of_attention():
    torch.manual_seed(2)
    block = AttentionOnlyBlock(8, 2, layer_norm=False)
    x = torch.randn(3, 5, 8)
    mask = torch.ones(5, 5, dtype=torch.bool).tril()
    with torch.no_grad():
        expected = x + block.attn(x, x, x, mask=mask)[0]
        assert torch.allclose(block(x), expected, atol=1e-6)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="positions must be"):
        AttentionOnlyLM(10, positions="alibi")
    with pytest.raises(ValueError, match="rope needs an even head size"):
        AttentionOnlyBlock(6, 2, rope=True)
    model = AttentionOnlyLM(10, d_model=8, num_heads=2, max_len=4)
    with pytest.raises(RuntimeError, match="run a forward pass first"):
        model.attention_weights()
    with pytest.raises(ValueError, match="more than max_len=4"):
        model(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"must lie in \[0, vocab_size=10\)"):
        model(torch.full((1, 3), 10))


def test_prefix_matching_and_previous_token_scores():
    period = 4
    n = 2 * period + 1
    induction = torch.zeros(n, n)
    previous = torch.zeros(n, n)
    for q in range(n):
        induction[q, q - period + 1 if q > period else 0] = 1.0
        previous[q, max(q - 1, 0)] = 1.0
    weights = torch.stack([induction, previous, torch.eye(n)])  # (H=3, N, N)
    assert prefix_matching_score(weights, period).tolist() == [1.0, 0.0, 0.0]
    assert previous_token_score(weights).tolist() == [1 / 8, 1.0, 0.0]  # query 1 reads key 0
    batch = weights.expand(2, 3, n, n)
    assert prefix_matching_score(batch, period).shape == (2, 3)
    uniform = torch.ones(n, n).tril() / torch.arange(1, n + 1)[:, None]
    want = sum(1 / (q + 1) for q in range(period + 1, 2 * period + 1)) / period
    assert prefix_matching_score(uniform, period).item() == pytest.approx(want)
    with pytest.raises(ValueError, match="N >= 9"):
        prefix_matching_score(torch.zeros(8, 8), period)
    with pytest.raises(ValueError, match=r"\(\.\.\., N, N\)"):
        previous_token_score(torch.zeros(3, 4))
    with pytest.raises(TypeError, match="period must be an int"):
        prefix_matching_score(uniform, 2.0)


def test_two_layers_learn_to_copy_a_repeat():
    """A tiny overfit: a few repeated sequences, learned until the second half is predicted."""
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    ids = corpora.repeated_sequences(16, 5, 5, vocab_size=12, seed=0)
    model = AttentionOnlyLM(12, d_model=32, num_heads=2, max_len=11, positions="rope")

    def loss_fn(logits, target):
        return F.cross_entropy(logits.transpose(1, 2), target, ignore_index=PAD_ID)

    train(model, (ids[:, :-1], ids[:, 1:]), loss_fn, epochs=40, lr=1e-2, batch_size=16,
          generator=generator, progress=False)  # fmt: skip
    with torch.no_grad():
        predicted = model(ids[:, :-1]).argmax(-1)
    second_half = slice(6, 10)  # inputs 6..9 predict tokens 7..10, the repeat's last four
    assert (predicted[:, second_half] == ids[:, 7:11]).float().mean() > 0.95
