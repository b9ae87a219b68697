import datetime

import pytest
import torch

from attention_book.data import (
    BOS_ID,
    DATE_FORMATS,
    EOS_ID,
    PAD_ID,
    Vocab,
    date_pairs,
    date_vocabs,
    encode_pairs,
    length_batches,
    sequence_pairs,
    sequence_vocab,
)


def test_special_ids_and_round_trip():
    assert (PAD_ID, BOS_ID, EOS_ID) == (0, 1, 2)
    vocab = Vocab("abc")
    assert len(vocab) == 6 and vocab.tokens[:3] == ["<pad>", "<bos>", "<eos>"]
    assert vocab.encode("cab") == [5, 3, 4]
    assert vocab.encode(["c", "a"]) == [5, 3]
    assert vocab.decode([BOS_ID, 5, 3, EOS_ID, 4]) == ["c", "a"]  # stops at EOS
    assert vocab.decode(torch.tensor([3, 4, PAD_ID])) == ["a", "b"]
    assert "6 ids" in repr(vocab)


def test_vocab_rejects_bad_input():
    vocab = Vocab("abc")
    with pytest.raises(ValueError, match="unknown token 'z' at position 1"):
        vocab.encode("az")
    with pytest.raises(ValueError, match="unknown token '<pad>'"):
        vocab.encode(["a", "<pad>"])
    with pytest.raises(ValueError, match="must not be empty"):
        vocab.encode("")
    with pytest.raises(ValueError, match="outside the vocabulary of 6 ids"):
        vocab.decode([7])
    with pytest.raises(ValueError, match="distinct"):
        Vocab("aa")
    with pytest.raises(ValueError, match="at least one token"):
        Vocab([])
    with pytest.raises(TypeError, match="non-empty str"):
        Vocab(["a", 3])


def test_date_pairs_are_correct_seeded_and_varied():
    pairs = date_pairs(400, seed=3)
    assert pairs == date_pairs(400, seed=3)
    assert pairs != date_pairs(400, seed=4)
    assert date_pairs(5, seed=torch.Generator().manual_seed(1)) == date_pairs(
        5, seed=torch.Generator().manual_seed(1)
    )
    for human, iso in pairs:
        date = datetime.date.fromisoformat(iso)
        assert 1950 <= date.year <= 2049
        assert human in {f(date) for f in DATE_FORMATS.values()}
    # every format shows up, including the ones with a weekday
    fmts = {next(k for k, f in DATE_FORMATS.items() if f(datetime.date.fromisoformat(i)) == h)
            for h, i in pairs}  # fmt: skip
    assert len(fmts) == len(DATE_FORMATS)


def test_date_formats_render_the_examples_in_their_names():
    date = datetime.date(2021, 3, 3)
    for name, fmt in DATE_FORMATS.items():
        assert fmt(date) == name
    assert DATE_FORMATS["March 3rd, 2021"](datetime.date(2021, 3, 12)) == "March 12th, 2021"
    assert DATE_FORMATS["Mar 3, 21"](datetime.date(1987, 11, 22)) == "Nov 22, 87"


def test_date_vocabs_cover_every_pair():
    source, target = date_vocabs()
    _, _, tgt_out = encode_pairs(date_pairs(300, seed=0), source, target)
    assert tgt_out.shape == (300, 11)  # 10 characters and EOS
    assert (tgt_out[:, -1] == EOS_ID).all()
    assert "".join(target.decode(tgt_out[0])).count("-") == 2


def test_sequence_pairs_reverse_and_copy():
    pairs = sequence_pairs(200, 3, 9, num_symbols=4, seed=1)
    assert pairs == sequence_pairs(200, 3, 9, num_symbols=4, seed=1)
    assert {len(s) for s, _ in pairs} == set(range(3, 10))
    assert set("".join(s for s, _ in pairs)) == set("abcd")
    assert all(t == s[::-1] for s, t in pairs)
    assert all(t == s for s, t in sequence_pairs(20, 2, 5, task="copy"))
    assert len(sequence_vocab(26)) == 29 and sequence_vocab(28).tokens[-2:] == ["A", "B"]


def test_sequence_pairs_distinct_letters_never_repeat():
    repeating = sequence_pairs(300, 5, 8, num_symbols=8, task="copy", seed=2)
    assert any(len(set(s)) < len(s) for s, _ in repeating)  # the default repeats letters
    pairs = sequence_pairs(300, 5, 8, num_symbols=8, task="copy", seed=2, distinct=True)
    assert pairs == sequence_pairs(300, 5, 8, num_symbols=8, task="copy", seed=2, distinct=True)
    assert all(len(set(s)) == len(s) and t == s for s, t in pairs)
    assert {len(s) for s, _ in pairs} == set(range(5, 9))
    assert set("".join(s for s, _ in pairs)) == set("abcdefgh")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"min_len": 6, "max_len": 5}, ValueError, "min_len must be <= max_len"),
        ({"min_len": 0}, ValueError, "min_len must be > 0"),
        ({"n": 0}, ValueError, "n must be > 0"),
        ({"num_symbols": 53}, ValueError, "at most 52"),
        ({"task": "sort"}, ValueError, "task must be 'reverse' or 'copy'"),
        ({"distinct": True, "num_symbols": 4}, ValueError, "max_len must be <= num_symbols"),
        ({"seed": 1.5}, TypeError, "seed must be an int or a torch.Generator"),
    ],
)
def test_sequence_pairs_rejects_bad_sizes(kwargs, error, match):
    args = {"n": 4, "min_len": 2, "max_len": 5, **kwargs}
    with pytest.raises(error, match=match):
        sequence_pairs(**args)


def test_encode_pairs_pads_and_shifts():
    vocab = Vocab("abc")
    src, tgt_in, tgt_out = encode_pairs([("ab", "ba"), ("abc", "c")], vocab, vocab)
    assert src.tolist() == [[3, 4, EOS_ID, 0], [3, 4, 5, EOS_ID]]
    assert tgt_in.tolist() == [[BOS_ID, 4, 3], [BOS_ID, 5, 0]]
    assert tgt_out.tolist() == [[4, 3, EOS_ID], [5, EOS_ID, 0]]
    assert src.dtype == tgt_in.dtype == tgt_out.dtype == torch.long


def test_encode_pairs_rejects_bad_input():
    vocab = Vocab("abc")
    with pytest.raises(ValueError, match="more than max_len=2"):
        encode_pairs([("abc", "a")], vocab, vocab, max_len=2)
    with pytest.raises(ValueError, match="unknown token 'x'"):
        encode_pairs([("ax", "a")], vocab, vocab)
    with pytest.raises(ValueError, match="must not be empty"):
        encode_pairs([("a", "")], vocab, vocab)
    with pytest.raises(ValueError, match="at least one"):
        encode_pairs([], vocab, vocab)


def test_length_batches_cover_every_example_once_and_trim_padding():
    vocab = sequence_vocab(5)
    pairs = sequence_pairs(50, 2, 12, num_symbols=5, seed=0)
    src, tgt_in, tgt_out = encode_pairs(pairs, vocab, vocab)
    batches = length_batches(src, tgt_in, tgt_out, batch_size=8, seed=1)
    assert [len(b[0]) for b in batches] == [8] * 6 + [2]
    seen = sorted(tuple(row[row != PAD_ID].tolist()) for b in batches for row in b[0])
    assert seen == sorted(tuple(row[row != PAD_ID].tolist()) for row in src)
    widths = [b[0].shape[1] for b in batches]
    assert widths == sorted(widths) and widths[0] < src.shape[1]  # short batches are narrow
    for s, ti, to in batches:
        assert (s[:, -1] != PAD_ID).any() and (to[:, -1] != PAD_ID).any()  # no all-PAD column
        assert ti.shape == to.shape and (ti[:, 0] == BOS_ID).all()
    again = length_batches(src, tgt_in, tgt_out, batch_size=8, seed=1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    with pytest.raises(ValueError, match="tgt_in must be a"):
        length_batches(src, tgt_in[:3], tgt_out, batch_size=8)
