import pytest
import torch
import torch.nn.functional as F

from attention_book.data import PAD_ID
from attention_book.models.classifier import AttentionPoolingClassifier
from attention_book.train import train


def _model(seed=0, **kwargs):
    torch.manual_seed(seed)
    return AttentionPoolingClassifier(12, 3, d_model=16, num_heads=2, max_len=8, **kwargs)


def test_shapes_and_pooling_weights():
    model = _model()
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, PAD_ID, PAD_ID]])
    logits = model(ids)
    assert logits.shape == (2, 3)
    weights = model.last_weights
    assert weights.shape == (2, 4)
    assert torch.allclose(weights.sum(-1), torch.ones(2))
    assert (weights[1, 2:] == 0).all() and (weights[1, :2] > 0).all()


@pytest.mark.parametrize("positions", ["rope", "sinusoidal", "learned"])
def test_padding_changes_nothing(positions):
    model = _model(positions=positions)
    ids = torch.tensor([[3, 9, 4]])
    padded = torch.tensor([[3, 9, 4, PAD_ID, PAD_ID]])
    with torch.no_grad():
        a, wa = model(ids), model.last_weights
        b, wb = model(padded), model.last_weights
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(wa, wb[:, :3], atol=1e-6)


def test_given_weights_replace_the_model_weights():
    model = _model(1)
    ids = torch.tensor([[3, 4, 5, PAD_ID]])
    uniform = torch.tensor([[1 / 3, 1 / 3, 1 / 3, 0.0]])
    with torch.no_grad():
        states, mask = model.encode(ids)
        expected = model.out(states[:, :3].mean(1))
        assert torch.allclose(model(ids, pool_weights=uniform), expected, atol=1e-6)
        own = model.pooling_weights(states, mask)
        assert torch.allclose(model(ids, pool_weights=own), model(ids), atol=1e-6)
        scores = states[0] @ model.query / 4.0  # sqrt(d_model = 16)
        assert torch.allclose(own[0, :3], scores[:3].softmax(-1), atol=1e-6)
    assert torch.equal(model.last_weights, own)


def test_bad_arguments_are_named():
    model = _model()
    ids = torch.tensor([[3, 4, 5]])
    with pytest.raises(ValueError, match=r"pool_weights must be \(B, N\) = \(1, 3\)"):
        model(ids, pool_weights=torch.ones(1, 4) / 4)
    with pytest.raises(ValueError, match="at least one token that is not padding"):
        model(torch.tensor([[3, 4], [PAD_ID, PAD_ID]]))
    with pytest.raises(ValueError, match=r"ids must be a \(B, N\) tensor"):
        model(torch.tensor([3, 4]))
    with pytest.raises(ValueError, match="more than max_len=8"):
        model(torch.full((1, 9), 3))
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        AttentionPoolingClassifier(12, 1)


def test_learns_whether_a_word_occurs():
    """A tiny overfit: the label is whether word 5 occurs anywhere in the sentence."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(6, 12, (64, 6))
    label = torch.arange(64) % 2
    spot = torch.randint(0, 6, (64,))
    ids[label == 1, spot[label == 1]] = 5
    model = AttentionPoolingClassifier(12, 2, d_model=16, num_heads=2, max_len=6)
    train(model, (ids, label), F.cross_entropy, epochs=30, lr=1e-2, batch_size=64,
          generator=generator, progress=False)  # fmt: skip
    with torch.no_grad():
        assert (model(ids).argmax(-1) == label).all()
