import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attention_book import seed_everything
from attention_book.attention import AdditiveAttention, BilinearAttention
from attention_book.data import EOS_ID, PAD_ID, encode_pairs, sequence_pairs, sequence_vocab
from attention_book.models.seq2seq import (
    GRUSeq2Seq,
    accuracy_by_length,
    attention_step,
    exact_match,
)
from attention_book.train import train

VOCAB = sequence_vocab(5)  # 8 ids
KINDS = ["none", "additive", "multiplicative"]


def batch():
    pairs = [("abcde", "edcba"), ("ab", "ba"), ("cde", "edc")]
    return encode_pairs(pairs, VOCAB, VOCAB)


def model(kind="additive", **kwargs):
    torch.manual_seed(0)
    return GRUSeq2Seq(len(VOCAB), len(VOCAB), embed_dim=8, hidden_dim=12, attention=kind,
                      max_len=10, **kwargs)  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_attention_weights(kind):
    src, tgt_in, _ = batch()
    net = model(kind)
    logits = net(src, tgt_in)
    assert logits.shape == (3, 6, len(VOCAB))
    if kind == "none":
        assert net.last_attention is None
        return
    weights = net.last_attention
    assert weights.shape == (3, 6, 6)  # sources end with EOS
    assert torch.allclose(weights.sum(-1), torch.ones(3, 6))
    assert (weights[src[:, None, :].expand_as(weights) == PAD_ID] == 0).all()  # padding: 0


@pytest.mark.parametrize("kind", KINDS)
def test_padding_does_not_change_a_sequence(kind):
    src, tgt_in, _ = batch()
    net = model(kind)
    together = net(src, tgt_in)
    alone = net(src[1:2, :3], tgt_in[1:2, :3])
    assert torch.allclose(together[1, :3], alone[0], atol=1e-6)


def test_attention_kinds_use_the_package_score_functions():
    assert isinstance(model("additive").attention, AdditiveAttention)
    assert isinstance(model("multiplicative").attention, BilinearAttention)
    assert model("none").attention is None
    assert model("additive", attention_dim=4).attention.query_proj.out_features == 4


def test_attention_step_is_the_first_decoder_step():
    src, tgt_in, _ = batch()
    net = model("additive")
    outputs, final, mask = net.encode(src)
    hidden, context, weights = attention_step(
        net.cell, net.attention, net.tgt_embed(tgt_in[:, 0]), final, outputs, mask
    )
    assert hidden.shape == (3, 12) and context.shape == (3, 12) and weights.shape == (3, 6)
    # by hand: GRU update, then the new state scores the source, masked softmax, average
    assert torch.allclose(hidden, net.cell(net.tgt_embed(tgt_in[:, 0]), final))
    scores = net.attention.scores(hidden[:, None], outputs)[:, 0].masked_fill(~mask, -torch.inf)
    by_hand = torch.softmax(scores, dim=-1)
    assert torch.allclose(weights, by_hand)
    assert torch.allclose(context, torch.einsum("bs,bsd->bd", by_hand, outputs), atol=1e-6)
    logits = net(src, tgt_in)
    assert torch.allclose(logits[:, 0], net.out(torch.cat([hidden, context], -1)), atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_teacher_forcing_equals_stepping(kind):
    src, tgt_in, _ = batch()
    net = model(kind)
    logits = net(src, tgt_in)
    outputs, final, mask = net.encode(src)
    hidden = final
    for t in range(tgt_in.shape[1]):
        embedded = net.tgt_embed(tgt_in[:, t])
        if kind == "none":
            hidden, context = net.cell(embedded, hidden), final
        else:
            hidden, context, weights = attention_step(
                net.cell, net.attention, embedded, hidden, outputs, mask
            )
            assert torch.allclose(weights, net.last_attention[:, t], atol=1e-6)
        step_logits = net.out(torch.cat([hidden, context], -1))
        assert torch.allclose(logits[:, t], step_logits, atol=1e-5)


def test_attention_step_accepts_a_gru_cell():
    cell = nn.GRUCell(3, 4)
    hidden, context, weights = attention_step(
        cell, BilinearAttention(4, 6), torch.randn(2, 3), torch.randn(2, 4),
        torch.randn(2, 5, 6), torch.tensor([[True] * 5, [True, True, False, False, False]])
    )  # fmt: skip
    assert hidden.shape == (2, 4) and context.shape == (2, 6)
    assert (weights[1, 2:] == 0).all() and torch.allclose(weights.sum(-1), torch.ones(2))


def test_plain_model_reads_the_same_context_at_every_step():
    src, tgt_in, _ = batch()
    net = model("none")
    _, final, _ = net.encode(src)
    logits = net(src, tgt_in)
    hidden = net.cell(net.tgt_embed(tgt_in[:, 0]), final)
    assert torch.allclose(logits[:, 0], net.out(torch.cat([hidden, final], -1)), atol=1e-6)
    params = sum(p.numel() for p in net.parameters())
    with_attention = sum(p.numel() for p in model("multiplicative").parameters())
    assert with_attention - params == 12 * 12  # the bilinear matrix is the only difference


def test_same_seed_same_model():
    src, tgt_in, _ = batch()
    assert torch.equal(model()(src, tgt_in), model()(src, tgt_in))


def test_bad_input_is_rejected():
    src, tgt_in, _ = batch()
    net = model()
    with pytest.raises(ValueError, match=r"src must hold ids in \[0, vocab_size=8\).* to 9"):
        net(src.masked_fill(src == 7, 9), tgt_in)
    with pytest.raises(ValueError, match="src has 11 positions, more than max_len=10"):
        net(torch.full((1, 11), 3), tgt_in[:1])
    with pytest.raises(ValueError, match="src has an empty sequence"):
        net(torch.tensor([[3, 4], [0, 0]]), tgt_in[:2])
    with pytest.raises(ValueError, match="torch.long"):
        net(src.float(), tgt_in)
    with pytest.raises(ValueError, match="share the batch size"):
        net(src, tgt_in[:2])
    with pytest.raises(ValueError, match="max_len must be at most"):
        net.greedy_decode(src, max_len=12)
    with pytest.raises(ValueError, match="attention must be one of"):
        model("dot")
    with pytest.raises(ValueError, match="hidden_dim must be > 0"):
        GRUSeq2Seq(8, 8, hidden_dim=0)


def test_greedy_decode_stops_at_eos_and_pads_after_it():
    src, _, _ = batch()
    net = model("additive")
    with torch.no_grad():  # a decoder that always says EOS
        net.out.weight.zero_()
        net.out.bias.fill_(-1.0)
        net.out.bias[EOS_ID] = 1.0
    out = net.greedy_decode(src, max_len=6)
    assert out.tolist() == [[EOS_ID]] * 3
    assert net.last_attention.shape == (3, 1, 6)


def overfit(kind, pairs, epochs):
    seed_everything(0)
    src, tgt_in, tgt_out = encode_pairs(pairs, VOCAB, VOCAB)
    net = GRUSeq2Seq(len(VOCAB), len(VOCAB), embed_dim=16, hidden_dim=32, attention=kind)

    def loss(logits, target):
        return F.cross_entropy(logits.transpose(1, 2), target, ignore_index=PAD_ID)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and steady on a busy CPU
    try:
        train(net, (src, tgt_in, tgt_out), loss, epochs=epochs, lr=0.02, batch_size=len(pairs),
              progress=False, generator=torch.Generator().manual_seed(0))  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return net, src, tgt_out


@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_tiny_overfit_reaches_exact_match(kind):
    pairs = sequence_pairs(8, 2, 6, num_symbols=5, seed=0)
    net, src, tgt_out = overfit(kind, pairs, epochs=60)
    assert exact_match(net, src, tgt_out, batch_size=3).all()
    decoded = net.greedy_decode(src, max_len=tgt_out.shape[1])
    for row, (_, target) in zip(decoded, pairs, strict=True):
        assert VOCAB.decode(row) == list(target)
        assert (row[len(target) + 1 :] == PAD_ID).all()  # PAD after EOS


class Fixed(nn.Module):
    """A stand-in model that 'decodes' fixed outputs."""

    pad_id = PAD_ID

    def __init__(self, outputs):
        super().__init__()
        self.outputs = outputs

    def greedy_decode(self, src, max_len):
        return self.outputs[: len(src), :max_len]


def test_exact_match_compares_up_to_eos_and_pads_widths():
    tgt_out = torch.tensor([[3, EOS_ID, 0], [4, 5, EOS_ID], [4, 5, EOS_ID]])
    decoded = torch.tensor([[3, EOS_ID], [4, 5], [4, 4]])  # right, no EOS, wrong token
    assert exact_match(Fixed(decoded), torch.ones(3, 2, dtype=torch.long), tgt_out).tolist() == [
        True,
        False,
        False,
    ]
    with pytest.raises(ValueError, match="one B"):
        exact_match(Fixed(decoded), torch.ones(2, 2, dtype=torch.long), tgt_out)


def test_accuracy_by_length():
    correct = torch.tensor([True, False, True, True])
    lengths = torch.tensor([5, 6, 12, 14])
    assert accuracy_by_length(correct, lengths, [5, 10, 15]) == [0.5, 1.0]
    with pytest.raises(ValueError, match=r"no example has a length in the bucket \[15, 20\)"):
        accuracy_by_length(correct, lengths, [5, 15, 20])
    with pytest.raises(ValueError, match="increasing"):
        accuracy_by_length(correct, lengths, [10, 5])
