"""Every checker accepts the reference solution and rejects plausible wrong ones."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from attention_book import checks


def reference(query, keys, values, temperature=1.0):
    scores = keys @ query / temperature
    weights = np.exp(scores - scores.max())
    return weights / weights.sum() @ values


def no_max_shift(query, keys, values, temperature=1.0):
    weights = np.exp(keys @ query / temperature)
    return weights / weights.sum() @ values


def times_temperature(query, keys, values, temperature=1.0):
    scores = keys @ query * temperature
    weights = np.exp(scores - scores.max())
    return weights / weights.sum() @ values


def unnormalised(query, keys, values, temperature=1.0):
    scores = keys @ query / temperature
    return np.exp(scores - scores.max()) @ values


def hard_lookup(query, keys, values, temperature=1.0):
    return values[np.argmax(keys @ query)]


def returns_weights(query, keys, values, temperature=1.0):
    scores = keys @ query / temperature
    weights = np.exp(scores - scores.max())
    return weights / weights.sum()


def ignores_temperature(query, keys, values, temperature=1.0):
    return reference(query, keys, values)


def softmax_over_values(query, keys, values, temperature=1.0):
    scores = keys @ query / temperature
    weights = np.exp(scores - scores.max())
    return (weights @ values) / (weights @ values).sum()


def crashes(query, keys, values, temperature=1.0):
    return keys @ values  # shapes do not line up


def not_started(query, keys, values, temperature=1.0):
    raise NotImplementedError


def test_accepts_reference(capsys):
    assert checks.check_soft_lookup(reference) is True
    assert "✓ soft_lookup passes all 6 checks" in capsys.readouterr().out


def test_accepts_torch_style_returns(capsys):
    import torch

    def torch_impl(query, keys, values, temperature=1.0):
        q, k, v = (torch.as_tensor(a) for a in (query, keys, values))
        return torch.softmax(k @ q / temperature, dim=0) @ v

    assert checks.check_soft_lookup(torch_impl) is True


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (no_max_shift, "large scores (around 1200) must not overflow"),
        (times_temperature, "temperature divides the scores (0.25: sharper weights)"),
        (unnormalised, "weights sum to one"),
        (hard_lookup, "soft average of the values at temperature 1"),
        (returns_weights, "output shape"),
        (ignores_temperature, "temperature divides the scores"),
        (softmax_over_values, "weights sum to one"),
        (crashes, "calling it raised ValueError"),
    ],
)
def test_rejects_wrong_implementations(wrong, named_property, capsys):
    assert checks.check_soft_lookup(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ soft_lookup failed a check.")
    assert named_property in out
    assert "query" in out  # the input that showed the failure is named


def test_feedback_never_shows_the_solution(capsys):
    checks.check_soft_lookup(unnormalised)
    out = capsys.readouterr().out
    assert "scores.max()" not in out and "np.exp(" not in out.replace("before np.exp", "")


def test_not_implemented_gets_a_gentle_note(capsys):
    assert checks.check_soft_lookup(not_started) is False
    assert "… soft_lookup is not implemented yet" in capsys.readouterr().out


def test_rejects_a_non_function():
    with pytest.raises(TypeError, match="fn must be a function, got int"):
        checks.check_soft_lookup(3)


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


# --- chapter 3: max_path_length ----------------------------------------------------------


def _reference_max_path_length(reach):
    step, connected, layers = reach.int(), reach.clone(), 1
    while True:
        wider = (step @ connected.int()) > 0
        if torch.equal(wider, connected):
            break
        connected, layers = wider, layers + 1
    return layers if (connected & ~torch.eye(len(reach), dtype=torch.bool)).any() else 0


def _only_first_to_last(reach):  # looks at the pair (N - 1, 0) only
    connected, layers = reach.clone(), 1
    while not connected[-1, 0] and layers < len(reach):
        connected, layers = (reach.int() @ connected.int()) > 0, layers + 1
    return layers if connected[-1, 0] else 0


def _off_by_one(reach):  # counts the extra layers, not the layers
    return max(_reference_max_path_length(reach) - 1, 0)


def _never_zero(reach):  # forgets the case with no connected pair
    return max(_reference_max_path_length(reach), 1)


def test_check_max_path_length_accepts_reference(capsys):
    assert checks.check_max_path_length(_reference_max_path_length) is True
    assert "passes all 7 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (_only_first_to_last, "the longest path need not start at the first position"),
        (_off_by_one, "one layer connects every pair"),
        (_never_zero, "no pair i != j is ever connected"),
        (lambda reach: reach.sum(), "one layer connects every pair"),
        (lambda reach: 1 / 0, "raised ZeroDivisionError"),
    ],
)
def test_check_max_path_length_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_max_path_length(wrong) is False
    assert named_property in capsys.readouterr().out


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


# --- chapter 4: positions and the block ---------------------------------------------------


def sinusoidal(n, d):
    angle = torch.arange(n)[:, None] / 10000 ** (torch.arange(0, d, 2) / d)
    codes = torch.zeros(n, d)
    codes[:, 0::2], codes[:, 1::2] = angle.sin(), angle.cos()
    return codes


def sinusoidal_swapped(n, d):
    return sinusoidal(n, d).view(n, d // 2, 2).flip(-1).reshape(n, d)  # cos first


def sinusoidal_blocks(n, d):
    codes = sinusoidal(n, d)
    return torch.cat([codes[:, 0::2], codes[:, 1::2]], dim=1)  # [sin | cos], not interleaved


def sinusoidal_wrong_frequency(n, d):
    angle = torch.arange(n)[:, None] / 10000 ** (torch.arange(d // 2) / d)  # i/d, not 2i/d
    return torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(n, d)


def test_check_sinusoidal_positions_accepts_reference_and_the_package(capsys):
    from attention_book.positions import sinusoidal_positions

    assert checks.check_sinusoidal_positions(sinusoidal) is True
    assert checks.check_sinusoidal_positions(sinusoidal_positions) is True
    assert capsys.readouterr().out.count("passes all 5 checks") == 2


@pytest.mark.parametrize(
    ("fn", "named_property"),
    [
        (sinusoidal_swapped, "position 0: sin 0 = 0"),
        (sinusoidal_blocks, "position 0: sin 0 = 0"),
        (sinusoidal_wrong_frequency, "pair i turns at the frequency"),
        (lambda n, d: sinusoidal(n, d)[:, : d // 2], "shape (n, d)"),
    ],
)
def test_check_sinusoidal_positions_rejects_wrong_answers(fn, named_property, capsys):
    assert checks.check_sinusoidal_positions(fn) is False
    assert named_property in capsys.readouterr().out


def rope(x, base=10000.0, sign=1.0, shift=0, exponent=2):
    n, d = x.shape[-2:]
    position = torch.arange(shift, n + shift, dtype=x.dtype)[:, None]
    angle = sign * position * base ** (-exponent * torch.arange(d // 2, dtype=x.dtype) / d)
    cos, sin = angle.cos(), angle.sin()
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1).flatten(-2)


def rope_rotate_half(x, base=10000.0):
    n, d = x.shape[-2:]
    angle = torch.arange(n, dtype=x.dtype)[:, None] * base ** (
        -torch.arange(0, d, 2, dtype=x.dtype) / d
    )
    cos, sin = angle.cos(), angle.sin()
    first, second = x[..., : d // 2], x[..., d // 2 :]  # pairs (i, i + d/2), GPT-NeoX style
    return torch.cat([first * cos - second * sin, first * sin + second * cos], -1)


def test_check_rope_accepts_reference_and_the_package(capsys):
    from attention_book.positions import apply_rotary, rotary_embedding

    def package(x, base):
        cos, sin = rotary_embedding(x.shape[-2], x.shape[-1], base, dtype=x.dtype)
        return apply_rotary(x, cos, sin)

    assert checks.check_rope(rope) is True
    assert checks.check_rope(package) is True
    assert capsys.readouterr().out.count("passes all 8 checks") == 2


@pytest.mark.parametrize(
    ("fn", "named_property"),
    [
        (lambda x, base: rope(x, base, sign=-1.0), "by +1 radian"),
        (rope_rotate_half, "every feature pair (2i, 2i+1)"),
        (lambda x, base: rope(x, base, exponent=1), "pair i turns by p * base^(-2i/d)"),
        (lambda x, base: rope(x, base, shift=1), "position 0 is rotated by angle 0"),
        (lambda x, base: rope(x), "the base is an argument"),
        (
            lambda x, base: x + sinusoidal(*x.shape[-2:]).double(),
            "position 0 is rotated by angle 0",
        ),
    ],
)
def test_check_rope_rejects_wrong_answers(fn, named_property, capsys):
    assert checks.check_rope(fn) is False
    assert named_property in capsys.readouterr().out


def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def test_check_layer_norm_accepts_reference_and_torch(capsys):
    def torch_layer_norm(x, weight, bias, eps):
        return nn.functional.layer_norm(x, x.shape[-1:], weight, bias, eps)

    assert checks.check_layer_norm(layer_norm) is True
    assert checks.check_layer_norm(torch_layer_norm) is True
    assert capsys.readouterr().out.count("passes all 6 checks") == 2


@pytest.mark.parametrize(
    ("fn", "named_property"),
    [
        (lambda x, w, b, eps: (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True), "biased"),
        (
            lambda x, w, b, eps: (x - x.mean(0)) / (x.var(0, unbiased=False) + eps).sqrt() * w + b,
            "every vector x[b, n, :] gets mean 0",
        ),
        (lambda x, w, b, eps: layer_norm(x, 1.0, 0.0, eps), "then times weight, plus bias"),
        (
            lambda x, w, b, eps: (
                (x - x.mean(-1, keepdim=True))
                / (x.var(-1, keepdim=True, unbiased=False).sqrt() + eps)
                * w
                + b
            ),
            "eps goes under the square root",
        ),
    ],
)
def test_check_layer_norm_rejects_wrong_answers(fn, named_property, capsys):
    assert checks.check_layer_norm(fn) is False
    assert named_property in capsys.readouterr().out


@pytest.mark.parametrize(
    "checker", [checks.check_sinusoidal_positions, checks.check_rope, checks.check_layer_norm]
)
def test_chapter_4_checkers_reject_non_functions(checker):
    with pytest.raises(TypeError, match="fn must be a function, got int"):
        checker(3)


# --- chapter 5: vision ---------------------------------------------------------------------


def box_iou_reference(a, b):
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def box_iou_no_clamp(a, b):
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).prod(-1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def box_iou_xywh(a, b):
    def corners(x):
        return torch.cat([x[:, :2], x[:, :2] + x[:, 2:]], dim=-1)

    return box_iou_reference(corners(a), corners(b))


def box_iou_over_min_area(a, b):
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / torch.minimum(area_a[:, None], area_b[None, :])


def test_check_box_iou_accepts_reference_and_the_package(capsys):
    from attention_book.models.detector import box_iou

    assert checks.check_box_iou(box_iou_reference) is True
    assert checks.check_box_iou(box_iou) is True
    assert capsys.readouterr().out.count("passes all 6 checks") == 2


@pytest.mark.parametrize(
    ("fn", "named_property"),
    [
        (box_iou_no_clamp, "apart on both axes"),
        (box_iou_xywh, "not x, y, w, h"),
        (box_iou_over_min_area, "half-overlapping boxes: IoU = 4 / 12"),
        (lambda a, b: box_iou_reference(a, b).T, "shape (N, M) = (2, 3)"),
    ],
)
def test_check_box_iou_rejects_wrong_answers(fn, named_property, capsys):
    assert checks.check_box_iou(fn) is False
    assert named_property in capsys.readouterr().out


class StudentSE(nn.Module):
    pool = "mean"
    gate = "sigmoid"

    def __init__(self, channels, reduction):
        super().__init__()
        self.squeeze = nn.Linear(channels, channels // reduction)
        self.excite = nn.Linear(channels // reduction, channels)

    def forward(self, x):
        pooled = x.mean(dim=(2, 3)) if self.pool == "mean" else x.amax(dim=(2, 3))
        scores = self.excite(torch.relu(self.squeeze(pooled)))
        gates = torch.sigmoid(scores) if self.gate == "sigmoid" else torch.softmax(scores, -1)
        return x * gates[:, :, None, None]


class SEWithMaxPool(StudentSE):
    pool = "max"


class SEWithSoftmax(StudentSE):
    gate = "softmax"


class SENoBottleneck(StudentSE):
    def __init__(self, channels, reduction):
        super().__init__(channels, 1)


class SEResidual(StudentSE):
    def forward(self, x):
        return x + super().forward(x)


def test_check_squeeze_excitation_accepts_reference_and_the_package(capsys):
    from attention_book.models.cnn_attention import SqueezeExcitation

    assert checks.check_squeeze_excitation(StudentSE) is True
    assert checks.check_squeeze_excitation(SqueezeExcitation) is True
    assert capsys.readouterr().out.count("passes all 4 checks") == 2


@pytest.mark.parametrize(
    ("cls", "named_property"),
    [
        (SEWithMaxPool, "squeeze(channel means)"),
        (SEWithSoftmax, "output = x * sigmoid"),
        (SENoBottleneck, "squeeze = Linear(8, 2)"),
        (SEResidual, "output = x * sigmoid"),
    ],
)
def test_check_squeeze_excitation_rejects_wrong_answers(cls, named_property, capsys):
    assert checks.check_squeeze_excitation(cls) is False
    assert named_property in capsys.readouterr().out


def penalty_reference(weights, mask):
    total = (weights * mask[..., None]).sum(dim=1)
    return ((1 - total) ** 2).sum(dim=1).mean()


@pytest.mark.parametrize(
    ("fn", "named_property"),
    [
        (lambda w, m: ((1 - w.sum(dim=1)) ** 2).sum(dim=1).mean(), "padded steps"),
        (
            lambda w, m: ((1 - (w * m[..., None]).sum(dim=2)) ** 2).sum(dim=1).mean(),
            "sum over the steps",
        ),
        (
            lambda w, m: ((1 - (w * m[..., None]).sum(dim=1)) ** 2).mean(),
            "all steps on one cell",
        ),
        (
            lambda w, m: ((1 - (w * m[..., None]).sum(dim=1)) ** 2).sum(),
            "the mean over the images",
        ),
    ],
)
def test_check_doubly_stochastic_penalty(fn, named_property, capsys):
    assert checks.check_doubly_stochastic_penalty(penalty_reference) is True
    assert "passes all 4 checks" in capsys.readouterr().out
    assert checks.check_doubly_stochastic_penalty(fn) is False
    assert named_property in capsys.readouterr().out


@pytest.mark.parametrize("checker", [checks.check_box_iou, checks.check_doubly_stochastic_penalty])
def test_chapter_5_checkers_reject_non_functions(checker):
    with pytest.raises(TypeError, match="fn must be a function, got int"):
        checker(3)
    with pytest.raises(TypeError, match="cls must be a class, got StudentSE"):
        checks.check_squeeze_excitation(StudentSE(8, 4))


# --- chapter 5: vision ----------------------------------------------------------------------


def student_patchify(images, patch_size, mistake=None):
    """A student's patchify; ``mistake`` switches on a typical error."""
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)  # (B, C, gh, p, gw, p)
    order = {
        None: (0, 2, 4, 1, 3, 5),
        "transposed_patches": (0, 2, 4, 1, 5, 3),  # each patch read column by column
        "column_major_grid": (0, 4, 2, 1, 3, 5),  # patches read down the columns first
        "channel_last": (0, 2, 4, 3, 5, 1),  # (p, p, C) instead of (C, p, p)
    }
    if mistake == "plain_reshape":
        return images.reshape(b, -1, c * p * p)
    return x.permute(*order[mistake]).reshape(b, (h // p) * (w // p), c * p * p)


def test_check_patchify_accepts_reference_and_the_package(capsys):
    from attention_book.models.vit import patchify

    assert checks.check_patchify(student_patchify) is True
    assert checks.check_patchify(patchify) is True
    assert capsys.readouterr().out.count("passes all 8 checks") == 2


@pytest.mark.parametrize(
    ("mistake", "named_property"),
    [
        ("transposed_patches", "patch 0 is the top-left 2 x 2 block"),
        ("column_major_grid", "the patches go left to right, then down"),
        ("channel_last", "flattened channel first"),
        ("plain_reshape", "patch 0 is the top-left 2 x 2 block"),
    ],
)
def test_check_patchify_rejects_wrong_answers(mistake, named_property, capsys):
    assert checks.check_patchify(lambda x, p: student_patchify(x, p, mistake)) is False
    assert named_property in capsys.readouterr().out


def test_check_patchify_reports_crashes_and_in_place_edits(capsys):
    def in_place(images, patch_size):
        out = student_patchify(images.clone(), patch_size)
        images.add_(1.0)
        return out

    assert checks.check_patchify(in_place) is False
    assert "the input is left unchanged" in capsys.readouterr().out
    assert checks.check_patchify(lambda x, p: x.reshape(len(x), -1, 5)) is False
    assert "raised RuntimeError" in capsys.readouterr().out
    with pytest.raises(TypeError, match="fn must be a function, got int"):
        checks.check_patchify(3)


def student_distance(weights, grid, mistake=None):
    """A student's mean attention distance in patches; ``mistake`` switches on an error."""
    gh, gw = grid
    index = torch.arange(gh * gw)
    rows, cols = index // gw, index % gw
    if mistake == "column_major":
        rows, cols = index % gh, index // gh
    pos = torch.stack([rows, cols], dim=-1).to(weights.dtype)  # (N, 2)
    diff = pos[:, None] - pos[None]  # (N, N, 2)
    if mistake == "manhattan":
        dist = diff.abs().sum(-1)
    else:
        dist = diff.pow(2).sum(-1).sqrt()
    per_query = (weights * dist).sum(-1)  # (..., N)
    if mistake == "unweighted":
        per_query = dist.mean(-1).expand(per_query.shape)
    return per_query.sum(-1) if mistake == "sum_over_queries" else per_query.mean(-1)


def test_check_mean_attention_distance_accepts_reference_and_the_package(capsys):
    from attention_book.models.vit import mean_attention_distance

    assert checks.check_mean_attention_distance(student_distance) is True
    assert checks.check_mean_attention_distance(mean_attention_distance) is True
    assert capsys.readouterr().out.count("passes all 6 checks") == 2


@pytest.mark.parametrize(
    ("mistake", "named_property"),
    [
        ("manhattan", "sqrt(2) apart"),
        ("column_major", "every patch on its row neighbour: 1"),
        ("unweighted", "every patch on itself: 0"),
        ("sum_over_queries", "every patch on its row neighbour: 1"),
    ],
)
def test_check_mean_attention_distance_rejects_wrong_answers(mistake, named_property, capsys):
    wrong = lambda w, g: student_distance(w, g, mistake)  # noqa: E731
    assert checks.check_mean_attention_distance(wrong) is False
    assert named_property in capsys.readouterr().out


# --- chapter 4: temperature sampling, prefix matching, attention pooling -----------------


def _sample_next(logits, temperature, generator):
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _sample_times_temperature(logits, temperature, generator):  # multiplies instead
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits * temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _sample_ignoring_temperature(logits, temperature, generator):
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _sample_global_rng(logits, temperature, generator):  # forgets the generator
    if temperature == 0:
        return logits.argmax(-1)
    return torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1).squeeze(-1)


def _sample_keepdim(logits, temperature, generator):  # returns (B, 1)
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


def test_check_temperature_sampling_accepts_reference(capsys):
    assert checks.check_temperature_sampling(_sample_next) is True
    assert "passes all 6 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (_sample_times_temperature, "temperature 0.5 sharpens"),
        (_sample_ignoring_temperature, "temperature 0 picks the most likely token"),
        (_sample_global_rng, "the same seed gives the same tokens"),
        (_sample_keepdim, "one token id per row"),
        (lambda logits, t, g: logits.argmax(-1), "temperature 1 draws each token"),
    ],
)
def test_check_temperature_sampling_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_temperature_sampling(wrong) is False
    assert named_property in capsys.readouterr().out


def _prefix_matching(weights, period):
    queries = torch.arange(period + 1, 2 * period + 1)
    return weights[..., queries, queries - period + 1].mean(-1)


def _prefix_duplicate(weights, period):  # the earlier copy itself, not the token after it
    queries = torch.arange(period + 1, 2 * period + 1)
    return weights[..., queries, queries - period].mean(-1)


def _prefix_every_query(weights, period):  # averages the first copy's queries in too
    queries = torch.arange(period - 1, 2 * period + 1)
    return weights[..., queries, (queries - period + 1).clamp(min=0)].mean(-1)


def _prefix_diagonal_sum(weights, period):  # sums instead of averaging
    queries = torch.arange(period + 1, 2 * period + 1)
    return weights[..., queries, queries - period + 1].sum(-1)


def test_check_prefix_matching_score_accepts_reference(capsys):
    assert checks.check_prefix_matching_score(_prefix_matching) is True
    assert "passes all 4 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (_prefix_duplicate, "hand-built heads"),
        (_prefix_every_query, "hand-built heads"),
        (_prefix_diagonal_sum, "hand-built heads"),
        (
            lambda w, period: _prefix_matching(w.reshape(-1, *w.shape[-2:]), period),
            "leading dimensions are kept",
        ),
    ],
)
def test_check_prefix_matching_score_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_prefix_matching_score(wrong) is False
    assert named_property in capsys.readouterr().out


def _attention_pool(states, query, mask):
    scores = states @ query / math.sqrt(states.shape[-1])
    weights = torch.softmax(scores.masked_fill(~mask, -math.inf), dim=-1)
    return (weights.unsqueeze(1) @ states).squeeze(1), weights


def _pool_unscaled(states, query, mask):
    weights = torch.softmax((states @ query).masked_fill(~mask, -math.inf), dim=-1)
    return (weights.unsqueeze(1) @ states).squeeze(1), weights


def _pool_no_mask(states, query, mask):
    weights = torch.softmax(states @ query / math.sqrt(states.shape[-1]), dim=-1)
    return (weights.unsqueeze(1) @ states).squeeze(1), weights


def _pool_wrong_axis(states, query, mask):  # softmax over the batch
    scores = states @ query / math.sqrt(states.shape[-1])
    weights = torch.softmax(scores.masked_fill(~mask, -math.inf), dim=0)
    return (weights.unsqueeze(1) @ states).squeeze(1), weights


def test_check_attention_pooling_accepts_reference(capsys):
    assert checks.check_attention_pooling(_attention_pool) is True
    assert "passes all 4 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (_pool_unscaled, "softmax(states @ query / sqrt(d))"),
        (_pool_no_mask, "0 on padding"),
        (_pool_wrong_axis, "sum to one over its real tokens"),
        (lambda s, q, m: _attention_pool(s, q, m)[0], "expected a pair (pooled, weights)"),
    ],
)
def test_check_attention_pooling_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_attention_pooling(wrong) is False
    assert named_property in capsys.readouterr().out


@pytest.mark.parametrize(
    "checker",
    [
        checks.check_temperature_sampling,
        checks.check_prefix_matching_score,
        checks.check_attention_pooling,
    ],
)
def test_chapter_4_later_checkers_reject_non_functions(checker):
    with pytest.raises(TypeError, match="fn must be a function, got int"):
        checker(3)


# --- chapter 6: efficiency ---------------------------------------------------------------


def test_check_attention_flops(capsys):
    assert checks.check_attention_flops(lambda n, m, d, d_v: 2 * n * m * (d + d_v)) is True
    for wrong, named in [
        (lambda n, m, d, d_v: 4 * n * m * d, "the values have their own size d_v"),
        (lambda n, m, d, d_v: 2 * n * m * d, "a multiply-add is 2 FLOPs"),
        (lambda n, m, d, d_v: n * m * (d + d_v), "a multiply-add is 2 FLOPs"),
        (lambda n, m, d, d_v: 4 * n * n * d, "n queries and m keys differ"),
    ]:
        assert checks.check_attention_flops(wrong) is False
        assert named in capsys.readouterr().out


def test_check_max_tokens(capsys):
    def reference(memory_bytes, heads, bytes_per_element):
        return math.isqrt(memory_bytes // (heads * bytes_per_element))

    assert checks.check_max_tokens(reference) is True
    for wrong, named in [
        (lambda mem, h, b: int(math.sqrt(mem / (h * b))), "exact for huge numbers"),
        (lambda mem, h, b: round(math.sqrt(mem / (h * b))), "16-bit floats"),
        (lambda mem, h, b: math.sqrt(mem // (h * b)), "16 GiB, 8 heads"),  # a float
        (lambda mem, h, b: math.isqrt(mem // b), "16 GiB, 8 heads"),  # forgets the heads
    ]:
        assert checks.check_max_tokens(wrong) is False
        assert named in capsys.readouterr().out


def _online(x, block_size):
    m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype)
    total = torch.zeros(x.shape[:-1], dtype=x.dtype)
    for j in range(0, x.shape[-1], block_size):
        block = x[..., j : j + block_size]
        new = torch.maximum(m, block.amax(-1))
        total = total * torch.exp(m - new) + torch.exp(block - new[..., None]).sum(-1)
        m = new
    return m, total


def _online_no_rescale(x, block_size):  # forgets to rescale the running sum
    m = torch.full(x.shape[:-1], -math.inf, dtype=x.dtype)
    total = torch.zeros(x.shape[:-1], dtype=x.dtype)
    for j in range(0, x.shape[-1], block_size):
        block = x[..., j : j + block_size]
        m = torch.maximum(m, block.amax(-1))
        total = total + torch.exp(block - m[..., None]).sum(-1)
    return m, total


def _online_unstable(x, block_size):  # no max at all: exp overflows
    return x.amax(-1), torch.exp(x).sum(-1) / torch.exp(x.amax(-1))


def _online_drops_tail(x, block_size):  # skips the last partial block
    full = x.shape[-1] // block_size * block_size
    return _online(x[..., :full], block_size)


def test_check_online_softmax(capsys):
    assert checks.check_online_softmax(_online) is True
    for wrong, named in [
        (_online_no_rescale, "the max grows in every block"),
        (_online_unstable, "must not overflow"),
        (_online_drops_tail, "later blocks only add"),
    ]:
        assert checks.check_online_softmax(wrong) is False
        assert named in capsys.readouterr().out


def test_check_merge_partial_attention(capsys):
    from attention_book.efficient import merge_partial_attention

    def naive_merge(out_a, lse_a, out_b, lse_b):  # exp without subtracting a max
        wa, wb = torch.exp(lse_a), torch.exp(lse_b)
        total = wa + wb
        return (wa[..., None] * out_a + wb[..., None] * out_b) / total[..., None], torch.log(total)

    def average(out_a, lse_a, out_b, lse_b):  # ignores how much weight each part carries
        return (out_a + out_b) / 2, torch.logaddexp(lse_a, lse_b)

    def max_lse(out_a, lse_a, out_b, lse_b):  # keeps lse as the larger part's
        top = torch.maximum(lse_a, lse_b)
        wa, wb = torch.exp(lse_a - top), torch.exp(lse_b - top)
        out = (wa[..., None] * out_a + wb[..., None] * out_b) / (wa + wb)[..., None]
        return out, top

    assert checks.check_merge_partial_attention(merge_partial_attention) is True
    for wrong, named in [
        (naive_merge, "scores around 800"),
        (average, "4 keys + 5 keys"),
        (max_lse, "4 keys + 5 keys: the same as attention over all 9 (lse)"),
    ]:
        assert checks.check_merge_partial_attention(wrong) is False
        assert named in capsys.readouterr().out


# --- check_additive_score and check_attention_decoder_step (chapter 3) -------------------


def additive_reference(query, keys, W_q, W_k, w):
    hidden = torch.tanh((query @ W_q.T).unsqueeze(-2) + (keys @ W_k.T).unsqueeze(-3))
    return hidden @ w


def additive_no_tanh(query, keys, W_q, W_k, w):
    return ((query @ W_q.T).unsqueeze(-2) + (keys @ W_k.T).unsqueeze(-3)) @ w


def additive_transposed(query, keys, W_q, W_k, w):
    return additive_reference(query, keys, W_q, W_k, w).transpose(-2, -1)


def additive_2d_only(query, keys, W_q, W_k, w):
    hidden = torch.tanh((query @ W_q.T)[:, None, :] + (keys @ W_k.T)[None, :, :])
    return hidden @ w


def additive_tanh_outside(query, keys, W_q, W_k, w):
    return torch.tanh(((query @ W_q.T).unsqueeze(-2) + (keys @ W_k.T).unsqueeze(-3)) @ w)


def test_check_additive_score_accepts_the_reference(capsys):
    assert checks.check_additive_score(additive_reference) is True
    assert "✓ additive_score passes all 5 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (additive_no_tanh, "scores equal w^T tanh(W_q q_i + W_k k_j)"),
        (additive_transposed, "shape: one score per (query, key) pair"),
        (additive_2d_only, "batch dimensions in front"),
        (additive_tanh_outside, "scores equal w^T tanh(W_q q_i + W_k k_j)"),
    ],
)
def test_check_additive_score_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_additive_score(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ additive_score failed a check.") and named_property in out


def decoder_step(cell, score, embedded, hidden, encoder_outputs, mask, *, query="new",
                 use_mask=True, dim=-1, order="after"):  # fmt: skip
    new_hidden = cell(embedded, hidden)
    q = new_hidden if query == "new" else hidden
    scores = score.scores(q[:, None, :], encoder_outputs)[:, 0]
    if use_mask:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=dim)
    context = torch.einsum("bs,bsd->bd", weights, encoder_outputs)
    return new_hidden, context, weights


def step_reference(cell, score, embedded, hidden, encoder_outputs, mask):
    return decoder_step(cell, score, embedded, hidden, encoder_outputs, mask)


def test_check_attention_decoder_step_accepts_the_reference(capsys):
    from attention_book.models.seq2seq import attention_step

    assert checks.check_attention_decoder_step(step_reference) is True
    assert "✓ attention_decoder_step passes all 6 checks" in capsys.readouterr().out
    assert checks.check_attention_decoder_step(attention_step) is True


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (lambda *a: decoder_step(*a, use_mask=False), "padding gets weight 0"),
        (lambda *a: decoder_step(*a, dim=0), "padding gets weight 0"),
        (lambda *a: decoder_step(*a, query="old"), "softmax of the scores of the NEW hidden"),
        (lambda *a: decoder_step(*a)[:2], "expected a triple"),
        (lambda *a: (a[3], *decoder_step(*a)[1:]), "new_hidden: the GRU cell"),
    ],
)
def test_check_attention_decoder_step_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_attention_decoder_step(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ attention_decoder_step failed a check.") and named_property in out


# --- check_dilated_window_mask and check_causal_linear_attention (chapter 6) ------------


def test_check_dilated_window_mask(capsys):
    def reference(n, window, dilation):
        return efficient_mask(n, window, dilation=dilation)

    def one_too_many(n, window, dilation):  # window + 1 keys
        return efficient_mask(n, window + 1, dilation=dilation)

    def ignores_dilation(n, window, dilation):
        return efficient_mask(n, window)

    def both_sides(n, window, dilation):  # not causal
        return efficient_mask(n, window, causal=False, dilation=dilation)

    def as_ints(n, window, dilation):
        return efficient_mask(n, window, dilation=dilation).int()

    assert checks.check_dilated_window_mask(reference) is True
    assert "passes all 5 checks" in capsys.readouterr().out
    for wrong, named in [
        (one_too_many, "window 2, no gaps"),
        (ignores_dilation, "window 3, dilation 2"),
        (both_sides, "window 2, no gaps"),
        (as_ints, "expected a bool tensor"),
    ]:
        assert checks.check_dilated_window_mask(wrong) is False
        assert named in capsys.readouterr().out


def efficient_mask(n, window, causal=True, dilation=1):
    from attention_book.efficient import sparse_attention_mask

    return sparse_attention_mask(n, window, causal, dilation=dilation)


def test_check_causal_linear_attention(capsys):
    from attention_book.efficient import linear_attention

    def reference(q, k, v, chunk_size):
        return linear_attention(q, k, v, causal=True, chunk_size=chunk_size)

    def not_causal(q, k, v, chunk_size):
        return linear_attention(q, k, v)

    def forgets_earlier_chunks(q, k, v, chunk_size):
        outs = []
        for s in range(0, q.shape[-2], chunk_size):
            part = slice(s, s + chunk_size)
            outs.append(
                linear_attention(q[..., part, :], k[..., part, :], v[..., part, :], causal=True)
            )
        return torch.cat(outs, dim=-2)

    def excludes_itself(q, k, v, chunk_size):  # strictly earlier keys, with the first kept
        a = (nn.functional.elu(q) + 1) @ (nn.functional.elu(k) + 1).transpose(-2, -1)
        a = a.tril(-1) + torch.eye(q.shape[-2]) * 1e-9
        return (a @ v) / a.sum(-1, keepdim=True)

    def softmax_attention(q, k, v, chunk_size):
        return nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    assert checks.check_causal_linear_attention(reference) is True
    assert "passes all 4 checks" in capsys.readouterr().out
    for wrong, named in [
        (not_causal, "one chunk"),
        (forgets_earlier_chunks, "four chunks: carry the sums"),
        (excludes_itself, "one chunk"),
        (softmax_attention, "one chunk"),
    ]:
        assert checks.check_causal_linear_attention(wrong) is False
        assert named in capsys.readouterr().out


# --- chapter 6: inference ------------------------------------------------------------------


def _repeat_kv(x, n_rep):
    return x.repeat_interleave(n_rep, dim=1)


def test_check_repeat_kv(capsys):
    assert checks.check_repeat_kv(_repeat_kv) is True
    assert checks.check_repeat_kv(
        lambda x, n: x[:, :, None].expand(-1, -1, n, -1, -1).flatten(1, 2)
    )
    for wrong, named in [
        (lambda x, n: x.repeat(1, n, 1, 1), "two key/value heads for four query heads"),
        (lambda x, n: x.repeat_interleave(n, dim=2), "two key/value heads for four query heads"),
        (lambda x, n: x[:, :, None].expand(-1, -1, n, -1, -1), "x unchanged"),
        (lambda x, n: x, "two key/value heads for four query heads"),
        (lambda x, n: x.repeat_interleave(n, dim=1)[:1], "a batch of two"),
    ]:
        assert checks.check_repeat_kv(wrong) is False
        assert named in capsys.readouterr().out


def _gqa(q, k, v):
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    n, m = q.shape[-2], k.shape[-2]
    mask = torch.ones(n, m, dtype=torch.bool).tril(diagonal=m - n)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _gqa_tiled(q, k, v):
    k, v = k.repeat(1, q.shape[1] // k.shape[1], 1, 1), v.repeat(1, q.shape[1] // k.shape[1], 1, 1)
    n, m = q.shape[-2], k.shape[-2]
    mask = torch.ones(n, m, dtype=torch.bool).tril(diagonal=m - n)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _gqa_top_left(q, k, v):  # PyTorch's is_causal aligns the mask to the first key
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def _gqa_not_causal(q, k, v):
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def _gqa_unscaled(q, k, v):
    return _gqa(q * math.sqrt(q.shape[-1]), k, v)


def test_check_grouped_query_attention(capsys):
    assert checks.check_grouped_query_attention(_gqa) is True
    for wrong, named in [
        (_gqa_tiled, "heads 0, 1 read key/value head 0"),
        (_gqa_top_left, "one decoding step"),
        (_gqa_not_causal, "causal multi-head"),
        (_gqa_unscaled, "causal multi-head"),
        (lambda q, k, v: _gqa(q, k, v)[:, :, -1:], "causal multi-head"),
    ]:
        assert checks.check_grouped_query_attention(wrong) is False
        assert named in capsys.readouterr().out


# --- check_ring_step ---------------------------------------------------------------------


def ring_step(out, lse, q, k, v):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    part_lse = torch.logsumexp(s, -1)
    new_lse = torch.logaddexp(lse, part_lse)
    safe = torch.where(torch.isfinite(new_lse), new_lse, torch.zeros_like(new_lse))
    part = torch.softmax(s, -1) @ v
    out = torch.exp(lse - safe)[..., None] * out + torch.exp(part_lse - safe)[..., None] * part
    return out, new_lse


def unscaled(out, lse, q, k, v):  # forgets 1 / sqrt(d)
    return ring_step(out, lse, q * math.sqrt(q.shape[-1]), k, v)


def no_shift(out, lse, q, k, v):  # exp of raw scores: overflows
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weight, total = torch.exp(s), torch.exp(lse)
    new_total = total + weight.sum(-1)
    out = (total[..., None] * out + weight @ v) / new_total[..., None]
    return out, torch.log(new_total)


def adds_outputs(out, lse, q, k, v):  # no reweighting: out + part
    new_out, new_lse = ring_step(torch.zeros_like(out), torch.full_like(lse, -math.inf), q, k, v)
    return out + new_out, torch.logaddexp(lse, new_lse)


def keeps_lse(out, lse, q, k, v):  # merges the outputs but returns the old lse
    new_out, _ = ring_step(out, lse, q, k, v)
    return new_out, torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))


def only_the_new_block(out, lse, q, k, v):  # forgets what came before
    return ring_step(torch.zeros_like(out), torch.full_like(lse, -math.inf), q, k, v)


def two_dims_only(out, lse, q, k, v):  # transposes dims 0 and 1: right for matrices only
    s = q @ k.transpose(0, 1) / math.sqrt(q.shape[-1])
    part_lse = torch.logsumexp(s, -1)
    new_lse = torch.logaddexp(lse, part_lse)
    part = torch.softmax(s, -1) @ v
    out = (
        torch.exp(lse - new_lse)[..., None] * out + torch.exp(part_lse - new_lse)[..., None] * part
    )
    return out, new_lse


def test_check_ring_step_accepts_the_reference(capsys):
    assert checks.check_ring_step(ring_step) is True
    assert "passes all 4 checks" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (unscaled, "the first step"),
        (no_shift, "scores in the thousands"),
        (adds_outputs, "two steps"),
        (keeps_lse, "the first step (out = 0, lse = -inf): attention over one block (lse)"),
        (only_the_new_block, "two steps"),
        (two_dims_only, "batch and head dims"),
        (lambda out, lse, q, k, v: out, "expected a pair (out, lse)"),
    ],
)
def test_check_ring_step_rejects_wrong_answers(wrong, named_property, capsys):
    assert checks.check_ring_step(wrong) is False
    assert named_property in capsys.readouterr().out


# --- check_causal_ring_skips -------------------------------------------------------------


def skips(world_size):
    return [(r, s) for r in range(world_size) for s in range(world_size) if s > r]


@pytest.mark.parametrize(
    ("wrong", "named_property"),
    [
        (lambda p: [(r, s) for r in range(p) for s in range(p) if s >= r], "one rank"),
        (lambda p: [(r, s) for r in range(p) for s in range(p) if s < r], "two ranks"),
        (lambda p: [(r, s) for r in range(p) for s in range(p) if (r - s) % p < r], "two ranks"),
        (lambda p: [(s, r) for r in range(p) for s in range(p) if s > r], "two ranks"),
        (lambda p: [(r, s) for r in range(p) for s in range(1, p) if s > r][:2], "four ranks"),
        (lambda p: p * (p - 1) // 2, "a collection of (rank, step) pairs"),
    ],
)
def test_check_causal_ring_skips(wrong, named_property, capsys):
    assert checks.check_causal_ring_skips(skips) is True
    assert checks.check_causal_ring_skips(lambda p: {(r, s) for r, s in skips(p)}) is True
    capsys.readouterr()
    assert checks.check_causal_ring_skips(wrong) is False
    assert named_property in capsys.readouterr().out


@pytest.mark.parametrize("checker", [checks.check_ring_step, checks.check_causal_ring_skips])
def test_ring_checkers_reject_non_functions(checker):
    with pytest.raises(TypeError, match="must be a function"):
        checker(3)
