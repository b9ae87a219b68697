"""``checks.ch7_mla``: the checker accepts the reference and rejects wrong answers."""

import math

import pytest
import torch

from attention_book import checks
from attention_book.modern import MultiHeadLatentAttention


def absorbed_query(q_c, w_uk, d_rope):
    h, dh = q_c.shape[1], q_c.shape[-1]
    return q_c @ w_uk.view(h, dh, -1) / math.sqrt(dh + d_rope)


def absorbed_query_einsum(q_c, w_uk, d_rope):
    h, dh = q_c.shape[1], q_c.shape[-1]
    w = w_uk.reshape(h, dh, w_uk.shape[-1])
    return torch.einsum("bhnd,hdc->bhnc", q_c, w) * (dh + d_rope) ** -0.5


def absorbed_query_package(q_c, w_uk, d_rope):
    """Through MultiHeadLatentAttention.absorbed_weights: W_Q = identity, no bias."""
    b, h, n, dh = q_c.shape
    mla = MultiHeadLatentAttention(h * dh, h, w_uk.shape[-1], d_rope).double()
    with torch.no_grad():
        mla.q_proj.weight.copy_(torch.eye(h * dh))
        mla.q_proj.bias.zero_()
        mla.k_up.weight.copy_(w_uk)
    query_weight, _, _ = mla.absorbed_weights()  # (H, d_latent, d_model)
    x = q_c.transpose(1, 2).reshape(b, n, h * dh)  # q_C = W_Q x = x
    return torch.einsum("bnd,hcd->bhnc", x, query_weight).detach() * mla.scale


def test_check_absorbed_query_accepts_the_reference(capsys):
    for fn in (absorbed_query, absorbed_query_einsum, absorbed_query_package):
        assert checks.check_absorbed_query(fn) is True
        assert "passes all 5 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        # forgets the scale: the scores come out sqrt(d_head + d_rope) times too large
        (lambda q, w, r: q @ w.view(q.shape[1], q.shape[-1], -1), "rotary part counts"),
        # scales by the content size only, ignoring the rotary part of the query
        (lambda q, w, r: absorbed_query(q, w, 0), "rotary part counts"),
        # scales by the latent size
        (
            lambda q, w, r: q @ w.view(q.shape[1], q.shape[-1], -1) / math.sqrt(w.shape[-1]),
            "rotary part counts",
        ),
        # heads interleaved: row j of W_UK given to head j % H
        (
            lambda q, w, r: (
                q @ w.view(q.shape[-1], q.shape[1], -1).transpose(0, 1) / math.sqrt(q.shape[-1] + r)
            ),
            "four heads",
        ),
        # every head uses head 0's rows
        (
            lambda q, w, r: q @ w[: q.shape[-1]] / math.sqrt(q.shape[-1] + r),
            "four heads",
        ),
        # W_UK transposed, then reshaped into heads: the right shape, the wrong numbers
        (
            lambda q, w, r: (
                q @ w.T.reshape(q.shape[1], q.shape[-1], -1) / math.sqrt(q.shape[-1] + r)
            ),
            "one head: the query is W_UK^T q_C",
        ),
        # positions and heads swapped in the result
        (lambda q, w, r: absorbed_query(q, w, r).transpose(1, 2), "the result is (B, H, N"),
        # the heads summed into one query
        (lambda q, w, r: absorbed_query(q, w, r).sum(1), "the result is (B, H, N"),
        # no latent at all: returns the content query
        (lambda q, w, r: q, "the result is (B, H, N"),
    ],
)
def test_check_absorbed_query_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_absorbed_query(wrong) is False
    out = capsys.readouterr().out
    assert named_property in out
    assert "absorbed_query failed a check" in out


def test_check_absorbed_query_reports_a_stub(capsys):
    def stub(q_c, w_uk, d_rope):
        raise NotImplementedError

    assert checks.check_absorbed_query(stub) is False
    assert "not implemented yet" in capsys.readouterr().out


def test_check_absorbed_query_rejects_non_functions():
    with pytest.raises(TypeError, match="fn must be a function"):
        checks.check_absorbed_query(3)
