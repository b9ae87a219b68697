"""``checks.ch2_math``: each checker accepts the reference and rejects wrong answers."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from attention_book import checks

# --- check_softmax -----------------------------------------------------------------------


def softmax_reference(x, dim=-1):
    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def softmax_no_shift(x, dim=-1):
    e = torch.exp(x)
    return e / e.sum(dim=dim, keepdim=True)


def softmax_ignores_dim(x, dim=-1):
    return softmax_reference(x, -1)


def softmax_sums_everything(x, dim=-1):
    e = torch.exp(x - x.max())
    return e / e.sum()


def softmax_in_place(x, dim=-1):
    x -= x.amax(dim=dim, keepdim=True)
    x.exp_()
    return x / x.sum(dim=dim, keepdim=True)


def softmax_not_started(x, dim=-1):
    raise NotImplementedError


def softmax_numpy_style(x, dim=-1):  # a correct answer written with NumPy
    a = x.numpy()
    e = np.exp(a - a.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


@pytest.mark.parametrize("good", [softmax_reference, softmax_numpy_style, torch.softmax])
def test_check_softmax_accepts_correct_answers(good, capsys):
    assert checks.check_softmax(good) is True
    assert "✓ softmax passes all 7 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (softmax_no_shift, "large scores must not overflow"),
        (softmax_ignores_dim, "dim=0"),
        (softmax_sums_everything, "sum to one along dim=-1"),
        (softmax_in_place, "the input is left unchanged"),
        (softmax_not_started, "not implemented yet"),
    ],
)
def test_check_softmax_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_softmax(wrong) is False
    assert named_property in capsys.readouterr().out


# --- check_scaled_dot_product_attention --------------------------------------------------


def sdpa(q, k, v, mask=None, scale=None, mask_after=False, fill=-math.inf, nan_rows=False,
         dim=-1, transpose_all=False):  # fmt: skip
    kt = k.T if transpose_all else k.transpose(-2, -1)
    scores = q @ kt * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    if mask is not None and not mask_after:
        scores = scores.masked_fill(~mask, fill)
    weights = torch.softmax(scores, dim=dim)
    if mask is not None and mask_after:
        weights = weights * mask
    if mask is not None and not nan_rows:
        weights = torch.nan_to_num(weights)
    return weights @ v, weights


def sdpa_reference(q, k, v, mask=None):
    return sdpa(q, k, v, mask)


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (lambda q, k, v, mask=None: sdpa(q, k, v, mask, scale=1.0), "q·k / sqrt(d)"),
        (lambda q, k, v, mask=None: sdpa(q, k, v, mask, scale=1 / q.shape[-1]), "sqrt(d)"),
        (lambda q, k, v, mask=None: sdpa(q, k, v, mask, mask_after=True), "masked keys get"),
        (lambda q, k, v, mask=None: sdpa(q, k, v, mask, fill=0.0), "masked keys get weight 0"),
        (lambda q, k, v, mask=None: sdpa(q, k, v, mask, dim=-2), "weights sum to one"),
        (lambda q, k, v, mask=None: sdpa(q, k, v, mask, transpose_all=True), "batch dimensions"),
        (lambda q, k, v, mask=None: sdpa(q, k, v, mask, nan_rows=True), "no allowed key"),
        (lambda q, k, v, mask=None: sdpa(q, k, v, mask)[0], "expected a pair"),
    ],
)
@pytest.mark.filterwarnings("ignore:The use of `x.T`")
def test_check_sdpa_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_scaled_dot_product_attention(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ scaled_dot_product_attention failed a check.")
    assert named_property in out


def test_check_sdpa_accepts_reference_and_the_package(capsys):
    from attention_book.attention import scaled_dot_product_attention

    assert checks.check_scaled_dot_product_attention(sdpa_reference) is True
    assert checks.check_scaled_dot_product_attention(scaled_dot_product_attention) is True
    assert capsys.readouterr().out.count("passes all 6 checks") == 2


# --- check_causal_mask -------------------------------------------------------------------


def causal_reference(n, m=None):
    m = n if m is None else m
    return torch.ones(n, m, dtype=torch.bool).tril(diagonal=m - n)


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (lambda n, m=None: causal_reference(n, m).float(), "returns a boolean tensor"),
        (lambda n, m=None: torch.ones(n, m or n, dtype=torch.bool).tril(-1), "itself too"),
        (lambda n, m=None: ~causal_reference(n, m), "query i sees keys 0..i"),
        (lambda n, m=None: torch.ones(n, m or n, dtype=torch.bool).tril(), "n < m"),
        (lambda n, m=None: torch.ones(n, m or n, dtype=torch.bool).triu(), "query i sees keys"),
    ],
)
def test_check_causal_mask_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_causal_mask(wrong) is False
    assert named_property in capsys.readouterr().out


def test_check_causal_mask_accepts_reference_and_the_package(capsys):
    from attention_book.attention import causal_mask

    assert checks.check_causal_mask(causal_reference) is True
    assert checks.check_causal_mask(causal_mask) is True
    assert checks.check_causal_mask(lambda n, m=None: np.tri(n, m, m - n if m else 0, dtype=bool))
    assert capsys.readouterr().out.count("passes all 5 checks") == 3


# --- check_multihead_attention -----------------------------------------------------------


class StudentMHA(nn.Module):
    """A student's multi-head attention; the flags switch on typical mistakes."""

    scale_by_d_model = split_without_transpose = merge_wrong = skip_out_proj = False
    ignore_mask = average_heads = False

    def __init__(self, d_model, num_heads):
        super().__init__()
        self.h, self.d = num_heads, d_model // num_heads
        self.q_proj, self.k_proj = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)
        self.v_proj, self.out_proj = nn.Linear(d_model, d_model), nn.Linear(d_model, d_model)

    def split(self, x):
        b, n, _ = x.shape
        if self.split_without_transpose:
            return x.reshape(b, self.h, n, self.d)
        return x.reshape(b, n, self.h, self.d).transpose(1, 2)

    def forward(self, query, key, value, mask=None):
        q, k, v = self.split(self.q_proj(query)), self.split(self.k_proj(key)), self.split(
            self.v_proj(value))  # fmt: skip
        d = self.h * self.d if self.scale_by_d_model else self.d
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)
        if mask is not None and not self.ignore_mask:
            scores = scores.masked_fill(~mask, -math.inf)
        weights = torch.softmax(scores, dim=-1)
        heads = weights @ v  # (B, H, N, d)
        b, _, n, _ = heads.shape
        merged = (heads.reshape(b, n, -1) if self.merge_wrong
                  else heads.transpose(1, 2).reshape(b, n, -1))  # fmt: skip
        out = merged if self.skip_out_proj else self.out_proj(merged)
        return out, weights.mean(1) if self.average_heads else weights


def mistake(flag):
    return type(f"MHA_{flag}", (StudentMHA,), {flag: True})


def test_check_multihead_accepts_reference_and_the_package(capsys):
    from attention_book.attention import MultiHeadAttention

    assert checks.check_multihead_attention(StudentMHA) is True
    assert checks.check_multihead_attention(MultiHeadAttention) is True
    assert capsys.readouterr().out.count("passes all 6 checks") == 2


@pytest.mark.parametrize(
    ("flag", "named_property"),
    [
        ("scale_by_d_model", "self-attention equals torch.nn.MultiheadAttention"),
        ("split_without_transpose", "self-attention equals"),
        ("merge_wrong", "self-attention equals"),
        ("skip_out_proj", "self-attention equals"),
        ("ignore_mask", "causal mask applies to every sequence and head"),
        ("average_heads", "weights (B, H, N, M)"),
    ],
)
def test_check_multihead_rejects_wrong_answers(flag, named_property, capsys):
    assert checks.check_multihead_attention(mistake(flag)) is False
    assert named_property in capsys.readouterr().out


def test_check_multihead_names_missing_layers(capsys):
    class NoLayers(nn.Module):
        def __init__(self, d_model, num_heads):
            super().__init__()
            self.qkv = nn.Linear(d_model, 3 * d_model)

    assert checks.check_multihead_attention(NoLayers) is False
    assert "four nn.Linear(8, 8) attributes" in capsys.readouterr().out
    with pytest.raises(TypeError, match="cls must be a class, got StudentMHA"):
        checks.check_multihead_attention(StudentMHA(8, 2))


@pytest.mark.parametrize(
    "checker",
    [checks.check_softmax, checks.check_scaled_dot_product_attention, checks.check_causal_mask],
)
def test_checkers_reject_non_functions(checker):
    with pytest.raises(TypeError, match="fn must be a function, got int"):
        checker(3)
