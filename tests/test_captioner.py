"""Show, Attend and Tell: the feature grid, one attention step, decoding, the metrics."""

from __future__ import annotations

import pytest
import torch

from attention_book.data import BOS_ID
from attention_book.models.captioner import ShowAttendTell, attention_peaks, exact_match


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ShowAttendTell(10, widths=(8, 16, 16), hidden_dim=24, attention_dim=12).eval()


def test_features_are_a_grid_with_coordinates(model):
    cells = model.features(torch.rand(2, 3, 32, 32))
    assert cells.shape == (2, 64, 18) and model.grid == (8, 8)
    x, y = cells[0, :, -2], cells[0, :, -1]
    assert x[0] == -1 and x[7] == 1 and y[0] == -1 and y[63] == 1  # row-major, x across
    assert torch.equal(cells[0, :, -2:], cells[1, :, -2:])


def test_step_is_additive_attention_then_a_gru_cell(model):
    cells = model.features(torch.rand(2, 3, 32, 32))
    hidden = torch.randn(2, 24)
    token = torch.tensor([BOS_ID, 5])
    logits, new_hidden, weights = model.step(token, hidden, cells)
    scores = model.attention.scores(hidden[:, None, :], cells)[:, 0]
    want_weights = torch.softmax(scores, dim=-1)
    context = (want_weights[:, :, None] * cells).sum(1)
    want_hidden = model.cell(torch.cat([model.embed(token), context], -1), hidden)
    assert torch.allclose(weights, want_weights, atol=1e-6)
    assert torch.allclose(new_hidden, want_hidden, atol=1e-6)
    assert torch.allclose(logits, model.out(torch.cat([want_hidden, context], -1)), atol=1e-6)


def test_forward_and_greedy_decode_agree(model):
    images = torch.rand(3, 3, 32, 32)
    tokens = model.greedy_decode(images, max_len=5)
    decode_attention = model.last_attention
    assert tokens.shape[0] == 3 and tokens.shape[1] <= 5
    assert torch.allclose(decode_attention.sum(-1), torch.ones(*tokens.shape), atol=1e-5)
    tgt_in = torch.cat([torch.full((3, 1), BOS_ID), tokens[:, :-1]], dim=1)
    logits = model(images, tgt_in)
    assert logits.shape == (3, tokens.shape[1], 10)
    first_rows = logits.argmax(-1)[:, 0]  # teacher forcing with the model's own words
    assert torch.equal(first_rows, tokens[:, 0])
    assert torch.allclose(model.last_attention[:, 0], decode_attention[:, 0], atol=1e-6)


def test_exact_match_compares_through_eos(model):
    images = torch.rand(4, 3, 32, 32)
    decoded = model.greedy_decode(images, max_len=4)
    targets = decoded.clone()
    assert exact_match(model, images, targets).all()
    targets[1, 0] = (targets[1, 0] + 1) % 10
    assert exact_match(model, images, targets).tolist() == [True, False, True, True]
    with pytest.raises(ValueError, match=r"tgt_out must be \(B, T\) with B = 4 images"):
        exact_match(model, images, targets[:2])


def test_attention_peaks_give_cell_centres():
    weights = torch.zeros(2, 16)
    weights[0, 0] = 1.0  # row 0, column 0
    weights[1, 6] = 1.0  # row 1, column 2
    peaks = attention_peaks(weights, (4, 4), 32)
    assert peaks.tolist() == [[4.0, 4.0], [20.0, 12.0]]
    with pytest.raises(ValueError, match="h \\* w = 9 cells"):
        attention_peaks(weights, (3, 3), 32)


def test_bad_inputs(model):
    with pytest.raises(ValueError, match=r"images must be \(B, 3, H, W\)"):
        model.features(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"tgt_in must be \(B, T\) long with B = 2 images"):
        model(torch.rand(2, 3, 32, 32), torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="vocab_size must be > 3"):
        ShowAttendTell(3)
