"""The from-scratch Transformer against PyTorch's, and its models' contracts."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from attention_book import seed_everything
from attention_book.attention import MultiHeadAttention
from attention_book.models import transformer as T


def copy_block(ours: nn.Module, theirs: nn.Module, cross: bool = False) -> None:
    """Copy a torch.nn.Transformer{Encoder,Decoder}Layer's weights into ours."""
    with torch.no_grad():
        ours.self_attn.load_state_dict(MultiHeadAttention.from_torch(theirs.self_attn).state_dict())
        if cross:
            ours.cross_attn.load_state_dict(
                MultiHeadAttention.from_torch(theirs.multihead_attn).state_dict()
            )
        ours.feed_forward.up.load_state_dict(theirs.linear1.state_dict())
        ours.feed_forward.down.load_state_dict(theirs.linear2.state_dict())
        sublayers = (
            [ours.self_sublayer, ours.cross_sublayer, ours.ff_sublayer]
            if cross
            else [ours.attn_sublayer, ours.ff_sublayer]
        )
        norms = (
            [theirs.norm1, theirs.norm2, theirs.norm3] if cross else [theirs.norm1, theirs.norm2]
        )
        for sub, norm in zip(sublayers, norms, strict=True):
            sub.norm.load_state_dict(norm.state_dict())


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch(norm_first: bool, activation: str) -> None:
    seed_everything(0)
    theirs = nn.TransformerEncoderLayer(
        32, 4, 64, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    ).eval()
    ours = T.EncoderLayer(32, 4, 64, norm_first=norm_first, activation=activation).eval()  # type: ignore[arg-type]
    copy_block(ours, theirs)
    x = torch.randn(3, 7, 32)
    keep = torch.tensor([[True] * 7, [True] * 5 + [False] * 2, [True] * 3 + [False] * 4])
    got = ours(x, keep[:, None, None, :])
    want = theirs(x, src_key_padding_mask=~keep)
    real = keep[:, :, None].expand_as(got)
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)
    assert ours.attention_weights is not None
    assert ours.attention_weights.shape == (3, 4, 7, 7)
    assert (ours.attention_weights[1, :, :, 5:] == 0).all()


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_layer_matches_torch(norm_first: bool) -> None:
    seed_everything(1)
    theirs = nn.TransformerDecoderLayer(
        32, 4, 64, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    ours = T.DecoderLayer(32, 4, 64, norm_first=norm_first).eval()
    copy_block(ours, theirs, cross=True)
    x, memory = torch.randn(2, 5, 32), torch.randn(2, 6, 32)
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    want = theirs(x, memory, tgt_mask=causal)
    torch.testing.assert_close(ours(x, memory), want, atol=1e-5, rtol=1e-5)
    weights = ours.self_attention_weights
    assert weights is not None and (weights.triu(1) == 0).all()
    assert ours.cross_attention_weights is not None
    assert ours.cross_attention_weights.shape == (2, 4, 5, 6)


def test_decoder_is_causal() -> None:
    seed_everything(2)
    decoder = T.Decoder(16, 2, 2, 32).eval()
    x, memory = torch.randn(1, 6, 16), torch.randn(1, 4, 16)
    changed = x.clone()
    changed[:, 4:] += 1.0
    torch.testing.assert_close(decoder(x, memory)[:, :4], decoder(changed, memory)[:, :4])


def test_sinusoidal_positions() -> None:
    codes = T.sinusoidal_positions(50, 16)
    assert codes.shape == (50, 16)
    torch.testing.assert_close(codes[0, 0::2], torch.zeros(8))
    torch.testing.assert_close(codes[0, 1::2], torch.ones(8))
    torch.testing.assert_close(codes[7, 2], torch.sin(torch.tensor(7 / 10000 ** (2 / 16))))
    with pytest.raises(ValueError, match="d must be even"):
        T.sinusoidal_positions(4, 5)
    with pytest.raises(ValueError, match="n must be"):
        T.sinusoidal_positions(0, 4)


def reversal(n: int, length: int, vocab: int, generator: torch.Generator):  # type: ignore[no-untyped-def]
    src = torch.randint(3, vocab, (n, length), generator=generator)
    tgt = torch.cat([src.flip(1), torch.full((n, 1), 2)], dim=1)
    tgt_in = torch.cat([torch.full((n, 1), 1), tgt[:, :-1]], dim=1)
    return src, tgt_in, tgt


def test_seq2seq_learns_reversal_and_decodes_greedily() -> None:
    generator = seed_everything(0)
    src, tgt_in, tgt = reversal(512, 6, 8, generator)
    model = T.Seq2SeqTransformer(8, 8, d_model=32, num_heads=2, num_layers=1, d_ff=64)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(250):
        loss = F.cross_entropy(model(src, tgt_in).transpose(1, 2), tgt)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    test_src, _, test_tgt = reversal(64, 6, 8, generator)
    out = model.greedy_decode(test_src, max_len=10)
    accuracy = (out[:, :7] == test_tgt).all(dim=1).float().mean()
    assert accuracy >= 0.95, accuracy
    assert model.last_attention is not None and model.last_attention.shape[-1] == 6


def test_greedy_decode_pads_after_eos() -> None:
    seed_everything(0)
    model = T.Seq2SeqTransformer(6, 6, d_model=16, num_heads=2, num_layers=1, d_ff=16).eval()
    with torch.no_grad():
        model.out.bias.fill_(0.0)
        model.out.weight.fill_(0.0)
        model.out.bias[2] = 10.0  # EOS always wins
    out = model.greedy_decode(torch.tensor([[3, 4, 0], [5, 5, 5]]), max_len=5)
    assert out.tolist() == [[2], [2]]


def test_padding_does_not_change_the_output() -> None:
    seed_everything(3)
    model = T.Seq2SeqTransformer(9, 9, d_model=16, num_heads=2, num_layers=2, d_ff=32).eval()
    src = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 0, 0]])
    tgt_in = torch.tensor([[1, 6, 7]])
    torch.testing.assert_close(model(src, tgt_in), model(padded, tgt_in))


def test_lm_is_causal_and_generates() -> None:
    generator = seed_everything(4)
    lm = T.TransformerLM(11, d_model=16, num_heads=2, num_layers=2, d_ff=32, max_len=8).eval()
    ids = torch.randint(0, 11, (2, 6), generator=generator)
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 11
    torch.testing.assert_close(lm(ids)[:, :-1], lm(changed)[:, :-1])
    out = lm.generate(ids, 5, temperature=0.0)
    assert out.shape == (2, 11) and (out[:, :6] == ids).all()
    sampled = lm.generate(ids, 3, generator=torch.Generator().manual_seed(0))
    again = lm.generate(ids, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, again)


def test_bad_input() -> None:
    model = T.Seq2SeqTransformer(5, 5, d_model=8, num_heads=2, num_layers=1, d_ff=8, max_len=4)
    with pytest.raises(ValueError, match=r"ids must lie in \[0, vocab_size=5\)"):
        model(torch.tensor([[1, 7]]), torch.tensor([[1]]))
    with pytest.raises(ValueError, match="more than max_len=4"):
        model(torch.ones(1, 6, dtype=torch.long), torch.tensor([[1]]))
    with pytest.raises(ValueError, match="torch.long"):
        model(torch.ones(1, 3), torch.tensor([[1]]))
    with pytest.raises(ValueError, match="one B"):
        model(torch.ones(2, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        T.EncoderLayer(10, 3, 8)
    with pytest.raises(ValueError, match="dropout"):
        T.FeedForward(8, 8, dropout=1.5)
    with pytest.raises(ValueError, match="activation"):
        T.FeedForward(8, 8, activation="tanh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positions must be"):
        T.TokenEmbedding(5, 8, 4, positions="rotary")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="temperature"):
        T.TransformerLM(5, d_model=8, num_heads=2).generate(
            torch.ones(1, 2, dtype=torch.long), 1, -1
        )


# --- relative positions inside the attention (chapter 4) ----------------------------------


@pytest.mark.parametrize("positions", ["rope", "alibi"])
def test_relative_positions_break_permutation_equivariance(positions: str) -> None:
    seed_everything(5)
    plain = T.EncoderLayer(16, 4, 32).eval()
    layer = T.EncoderLayer(16, 4, 32, positions=positions).eval()  # type: ignore[arg-type]
    layer.load_state_dict(plain.state_dict())  # same weights; only the positions differ
    x = torch.randn(2, 7, 16)
    perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    torch.testing.assert_close(plain(x[:, perm]), plain(x)[:, perm])
    assert not torch.allclose(layer(x[:, perm]), layer(x)[:, perm], atol=1e-4)


def test_alibi_encoder_is_reversal_equivariant_and_runs_past_any_length() -> None:
    seed_everything(6)
    encoder = T.Encoder(16, 4, 2, 32, positions="alibi").eval()
    for n in (5, 200):  # no table to outgrow
        x = torch.randn(1, n, 16)
        torch.testing.assert_close(encoder(x.flip(1)), encoder(x).flip(1), atol=1e-5, rtol=1e-5)
    weights = encoder.attention_weights()
    assert weights.shape == (2, 1, 4, 200, 200)


@pytest.mark.parametrize("positions", ["rope", "alibi"])
def test_lm_with_relative_positions_is_causal_and_generates(positions: str) -> None:
    generator = seed_everything(7)
    lm = T.TransformerLM(
        11,
        d_model=16,
        num_heads=2,
        num_layers=2,
        d_ff=32,
        max_len=64,
        positions=positions,  # type: ignore[arg-type]
    ).eval()
    assert not hasattr(lm.embed, "codes")
    ids = torch.randint(0, 11, (2, 40), generator=generator)
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 11
    torch.testing.assert_close(lm(ids)[:, :-1], lm(changed)[:, :-1])
    assert lm.generate(ids[:, :3], 4, temperature=0.0).shape == (2, 7)


@pytest.mark.parametrize("positions", ["rope", "alibi"])
def test_seq2seq_with_relative_positions_ignores_padding(positions: str) -> None:
    seed_everything(8)
    model = T.Seq2SeqTransformer(
        9,
        9,
        d_model=16,
        num_heads=2,
        num_layers=2,
        d_ff=32,
        positions=positions,  # type: ignore[arg-type]
    ).eval()
    assert model.encoder.layers[0].positions == positions
    assert model.decoder.layers[0].positions == positions
    tgt_in = torch.tensor([[1, 6, 7]])
    torch.testing.assert_close(
        model(torch.tensor([[3, 4, 5]]), tgt_in), model(torch.tensor([[3, 4, 5, 0, 0]]), tgt_in)
    )


def test_token_embedding_adds_no_codes_for_relative_schemes() -> None:
    seed_everything(9)
    embed = T.TokenEmbedding(7, 8, 4, positions="rope", pad_id=None)
    ids = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(embed(ids), embed.tokens(ids) * 8**0.5)


def test_layers_reject_absolute_positions_and_odd_rope_heads() -> None:
    with pytest.raises(ValueError, match="positions of a layer must be 'rope', 'alibi' or 'none'"):
        T.EncoderLayer(16, 4, 32, positions="sinusoidal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs an even head size, got d_head=3"):
        T.DecoderLayer(12, 4, 32, positions="rope")
