"""``checks.ch4_pretrained``: each checker accepts the reference and rejects wrong answers."""

import pytest
import torch

from attention_book import checks

# --- chapter 4: BERT embeddings, mean pooling, attention rollout --------------------------


def _bert_embeddings(ids, types, word, position, token_type, gamma, beta, eps=1e-12, start=0):
    positions = torch.arange(start, start + ids.shape[1])
    x = word[ids] + position[positions] + token_type[types]
    return torch.nn.functional.layer_norm(x, x.shape[-1:], gamma, beta, eps=eps)


def test_check_bert_embeddings_accepts_reference(capsys):
    assert checks.check_bert_embeddings(_bert_embeddings) is True
    assert "passes all 5 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (  # forgets the positions
            lambda i, t, w, p, s, g, b: torch.nn.functional.layer_norm(
                w[i] + s[t], (w.shape[1],), g, b, eps=1e-12
            ),
            "word + position embeddings",
        ),
        (  # forgets the LayerNorm
            lambda i, t, w, p, s, g, b: w[i] + p[: i.shape[1]] + s[t],
            "word + position embeddings",
        ),
        (  # PyTorch's default epsilon
            lambda i, t, w, p, s, g, b: _bert_embeddings(i, t, w, p, s, g, b, eps=1e-5),
            "epsilon is 1e-12",
        ),
        (  # positions counted from 1
            lambda i, t, w, p, s, g, b: _bert_embeddings(i, t, w, p, s, g, b, start=1),
            "word + position embeddings",
        ),
        (  # ignores the segments
            lambda i, t, w, p, s, g, b: _bert_embeddings(i, torch.zeros_like(t), w, p, s, g, b),
            "token_type_ids pick rows",
        ),
        (  # normalises over the tokens instead of the features
            lambda i, t, w, p, s, g, b: (
                torch.nn.functional.layer_norm(
                    (w[i] + p[: i.shape[1]] + s[t]).transpose(1, 2), (i.shape[1],), eps=1e-12
                ).transpose(1, 2)
                * g
                + b
            ),
            "word + position embeddings",
        ),
    ],
)
def test_check_bert_embeddings_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_bert_embeddings(wrong) is False
    assert named_property in capsys.readouterr().out


def _mean_pool(hidden, mask):
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1)


def test_check_mean_pool_accepts_reference(capsys):
    assert checks.check_mean_pool(_mean_pool) is True
    assert "passes all 4 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (lambda h, m: h.mean(1), "padding is left out"),  # averages the padding too
        (lambda h, m: (h * m.unsqueeze(-1)).sum(1) / h.shape[1], "padding is left out"),
        (lambda h, m: (h * m.unsqueeze(-1)).sum(1), "the plain mean"),  # a sum, not a mean
        (lambda h, m: h[:, 0], "the plain mean"),  # the first token ([CLS]) only
        (lambda h, m: h.mean(-1), "output shape"),  # averages the features
    ],
)
def test_check_mean_pool_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_mean_pool(wrong) is False
    assert named_property in capsys.readouterr().out


def _rollout(weights, residual=True, order="later-left", fuse="mean"):
    maps = weights.mean(1) if fuse == "mean" else weights.amax(1)
    if residual:
        maps = 0.5 * maps + 0.5 * torch.eye(maps.shape[-1], dtype=maps.dtype)
        maps = maps / maps.sum(-1, keepdim=True)
    out = maps[0]
    for layer_map in maps[1:]:
        out = layer_map @ out if order == "later-left" else out @ layer_map
    return out


def test_check_attention_rollout_accepts_reference(capsys):
    assert checks.check_attention_rollout(_rollout) is True
    assert "passes all 5 checks" in capsys.readouterr().out


def test_attention_rollout_of_the_package_passes(capsys):
    from attention_book.interpret import attention_rollout

    assert checks.check_attention_rollout(attention_rollout) is True


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (lambda w: _rollout(w, residual=False), "0.5 * A + 0.5 * I"),
        (lambda w: _rollout(w, order="later-right"), "the later layer on the left"),
        (lambda w: _rollout(w, fuse="max"), "average the heads first"),
        (lambda w: _rollout(w[:, :1]), "average the heads first"),  # the first head only
        (lambda w: _rollout(w)[0], "output shape"),  # the first query's row only
    ],
)
def test_check_attention_rollout_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_attention_rollout(wrong) is False
    assert named_property in capsys.readouterr().out
