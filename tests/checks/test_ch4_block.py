"""``checks.ch4_block``: each checker accepts the reference and rejects wrong answers."""

import pytest
import torch
from torch import nn

from attention_book import checks

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
