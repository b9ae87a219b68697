import pytest
import torch

from attention_book import corpora
from attention_book.data import BOS_ID, EOS_ID, PAD_ID, Vocab

# --- translation -------------------------------------------------------------------------


def test_translate_reorders_and_agrees():
    assert corpora.translate("the big dogs saw a cat".split()) == (
        "vok -en gran -en la miru po vidi -n".split()
    )
    # two adjectives come out in mirror order; a singular subject gives no -n
    assert corpora.translate("a small black fox heard some birds".split()) == (
        "ruka nir pik pilo -en po audi".split()
    )


def test_alignment_points_at_the_source_words():
    english = "the big dogs saw a cat".split()
    aligned = [english[i] for i in corpora.translation_alignment(english)]
    assert aligned == ["dogs", "dogs", "big", "big", "the", "cat", "cat", "saw", "dogs"]


def test_translation_pairs_are_seeded_correct_and_cover_the_grammar():
    pairs = corpora.translation_pairs(300, seed=1)
    assert pairs == corpora.translation_pairs(300, seed=1)
    assert pairs != corpora.translation_pairs(300, seed=2)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert corpora.translation_pairs(5, seed=g1) == corpora.translation_pairs(5, seed=g2)
    english, target = corpora.translation_vocabs()
    for source, translation in pairs:
        assert translation == corpora.translate(source)
        english.encode(source), target.encode(translation)  # every word is in a vocabulary
        assert 3 <= len(source) <= 9
    assert any("-n" in t for _, t in pairs) and any("-n" not in t for _, t in pairs)
    assert max(len(s) for s, _ in corpora.translation_pairs(200, max_adjectives=0)) == 5


@pytest.mark.parametrize(
    ("sentence", "message"),
    [
        ([], "must not be empty"),
        ("the dog saw a cat".split() + ["big"] * 20, "more than the maximum 24"),
        ("the dog saw a zebra".split(), "unknown word 'zebra' at position 4"),
        ("dog saw a cat".split(), "expected a determiner"),
        ("the dog a cat".split(), "expected a verb at position 2"),
        ("a dogs saw a cat".split(), "does not agree"),
        ("the dog saw some cat".split(), "does not agree"),
        ("the dog saw the cat the".split(), "expected the end of the sentence at position 5"),
        ("the dog saw the".split(), "expected an adjective or a noun at position 4"),
    ],
)
def test_translate_rejects_bad_sentences(sentence, message):
    with pytest.raises(ValueError, match=message):
        corpora.translate(sentence)


def test_translate_wants_words_not_a_string():
    with pytest.raises(TypeError, match="split it"):
        corpora.translate("the dog saw a cat")
    with pytest.raises(ValueError, match="max_adjectives must be at most 8"):
        corpora.translation_pairs(3, max_adjectives=9)
    with pytest.raises(TypeError, match="seed must be an int"):
        corpora.translation_pairs(3, seed=1.5)


# --- summaries ---------------------------------------------------------------------------


def test_summaries_list_the_cast_in_order_of_first_mention():
    story = "bob met ann . cy paid bob . ann thanked bob .".split()
    assert corpora.summarize(story) == ["bob", "ann", "cy"]
    assert corpora.summarize(story, counts=True) == ["bob", "3", "ann", "2", "cy", "1"]
    pairs = corpora.summary_pairs(200, seed=3)
    assert pairs == corpora.summary_pairs(200, seed=3)
    story_vocab, summary_vocab = corpora.summary_vocabs()
    for story, summary in pairs:
        assert len(set(summary)) == len(summary) >= 2 and set(summary) <= set(story)
        assert 8 <= len(story) <= 20 and story.count(".") == len(story) // 4
        story_vocab.encode(story), summary_vocab.encode(summary)
    for _, summary in corpora.summary_pairs(50, seed=3, counts=True):
        summary_vocab.encode(summary)


def test_summaries_reject_bad_input():
    with pytest.raises(ValueError, match="at least one person"):
        corpora.summarize(["met", "."])
    with pytest.raises(ValueError, match="unknown word 'zed'"):
        corpora.summarize(["zed", "met", "ann", "."])
    with pytest.raises(ValueError, match="max_events <= 6"):
        corpora.summary_pairs(2, max_events=7)
    with pytest.raises(ValueError, match="min_events <= max_events"):
        corpora.summary_pairs(2, min_events=4, max_events=3)


# --- sentiment ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "label", "evidence"),
    [
        ("the movie was good", 1, (3, None)),
        ("the movie was not good", 0, (4, 3)),
        ("the movie was not very bad", 1, (5, 3)),
        ("honestly the plot is never dull", 1, (5, 4)),
        ("the plot was good but the acting was awful", 0, (8, None)),
        ("the plot was not good but the acting was not awful", 1, (10, 9)),
    ],
)
def test_sentiment_labels_and_evidence(sentence, label, evidence):
    words = sentence.split()
    assert corpora.sentiment_label(words) == label
    assert corpora.sentiment_evidence(words) == evidence


def test_sentiment_sentences_are_seeded_balanced_and_labelled():
    data = corpora.sentiment_sentences(1000, seed=2)
    assert data == corpora.sentiment_sentences(1000, seed=2)
    labels = [label for _, label in data]
    assert 0.4 < sum(labels) / len(labels) < 0.6
    assert any("but" in s for s, _ in data) and any("not" in s for s, _ in data)
    assert all(corpora.sentiment_label(s) == label for s, label in data)
    assert not any("but" in s for s, _ in corpora.sentiment_sentences(100, contrast=0.0))
    vocab = corpora.sentiment_vocab()
    assert all(len(s) <= corpora.MAX_SENTENCE_LEN and vocab.encode(s) for s, _ in data)


def test_sentiment_rejects_bad_input():
    with pytest.raises(ValueError, match="exactly one polar word, got 0"):
        corpora.sentiment_label("the movie was".split())
    with pytest.raises(ValueError, match="exactly one polar word, got 2"):
        corpora.sentiment_label("the movie was good bad".split())
    with pytest.raises(ValueError, match="unknown word 'meh'"):
        corpora.sentiment_label("the movie was meh".split())
    with pytest.raises(ValueError, match="contrast must be a probability"):
        corpora.sentiment_sentences(3, contrast=1.5)


# --- encoding and repeated sequences -----------------------------------------------------


def test_encode_sentences_pads_and_validates():
    vocab = Vocab(["a", "b", "c"])
    batch = corpora.encode_sentences([["a", "b"], ["c"]], vocab, max_len=4, bos=True, eos=True)
    assert batch.tolist() == [[BOS_ID, 3, 4, EOS_ID], [BOS_ID, 5, EOS_ID, PAD_ID]]
    assert corpora.encode_sentences([["a"]], vocab, max_len=1).tolist() == [[3]]
    with pytest.raises(ValueError, match=r"sentences\[1\] is empty"):
        corpora.encode_sentences([["a"], []], vocab, max_len=4)
    with pytest.raises(ValueError, match=r"needs 4 tokens .* more than max_len=3"):
        corpora.encode_sentences([["a", "b"]], vocab, max_len=3, bos=True, eos=True)
    with pytest.raises(ValueError, match="unknown token 'z'"):
        corpora.encode_sentences([["a", "z"]], vocab, max_len=4)
    with pytest.raises(ValueError, match="at least one sentence"):
        corpora.encode_sentences([], vocab, max_len=4)
    with pytest.raises(TypeError, match="list of words"):
        corpora.encode_sentences(["ab"], vocab, max_len=4)


def test_repeated_sequences_repeat_exactly():
    ids = corpora.repeated_sequences(50, 3, 7, vocab_size=20, seed=1)
    assert ids.shape == (50, 15) and ids.dtype == torch.long
    assert torch.equal(ids, corpora.repeated_sequences(50, 3, 7, vocab_size=20, seed=1))
    assert not torch.equal(ids, corpora.repeated_sequences(50, 3, 7, vocab_size=20, seed=2))
    assert (ids[:, 0] == BOS_ID).all()
    lengths = set()
    for row in ids:
        n = int((row != PAD_ID).sum()) - 1
        half = n // 2
        lengths.add(half)
        assert n == 2 * half and torch.equal(row[1 : 1 + half], row[1 + half : 1 + n])
        assert row[1 : 1 + n].min() >= 3 and row[1 : 1 + n].max() < 20
    assert lengths == set(range(3, 8))
    with pytest.raises(ValueError, match="min_len must be <= max_len"):
        corpora.repeated_sequences(2, 5, 4, vocab_size=20)
    with pytest.raises(ValueError, match="vocab_size must be >= 4"):
        corpora.repeated_sequences(2, 1, 4, vocab_size=3)
