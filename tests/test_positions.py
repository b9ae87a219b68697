"""Position schemes: sinusoidal codes, rotary embeddings (RoPE) and ALiBi biases."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from attention_book.models import transformer as T
from attention_book.positions import (
    alibi_bias,
    alibi_slopes,
    apply_rotary,
    rotary_embedding,
    sinusoidal_positions,
)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_sinusoidal_positions_is_re_exported_from_the_transformer() -> None:
    assert T.sinusoidal_positions is sinusoidal_positions
    codes = sinusoidal_positions(9, 6, base=100.0)
    angle = torch.arange(9.0)[:, None] / 100.0 ** (torch.arange(0, 6, 2) / 6)
    torch.testing.assert_close(codes[:, 0::2], angle.sin())
    torch.testing.assert_close(codes[:, 1::2], angle.cos())


def test_rotary_tables_match_the_sinusoidal_codes() -> None:
    cos, sin = rotary_embedding(7, 8, dtype=torch.float64)
    codes = sinusoidal_positions(7, 8).double()
    assert cos.shape == sin.shape == (7, 4) and cos.dtype == torch.float64
    torch.testing.assert_close(sin, codes[:, 0::2])
    torch.testing.assert_close(cos, codes[:, 1::2])


def test_apply_rotary_is_a_complex_multiplication() -> None:
    x = rand(2, 5, 8)
    cos, sin = rotary_embedding(5, 8, base=50.0, dtype=torch.float64)
    pairs = torch.view_as_complex(x.reshape(2, 5, 4, 2).contiguous())  # x_2i + i x_2i+1
    want = torch.view_as_real(pairs * torch.complex(cos, sin)).reshape(2, 5, 8)
    got = apply_rotary(x, cos, sin)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got[:, 0], x[:, 0])  # position 0: angle 0
    torch.testing.assert_close(got.norm(dim=-1), x.norm(dim=-1))  # a rotation


@given(
    p=st.integers(0, 40), r=st.integers(0, 40), shift=st.integers(0, 40), seed=st.integers(0, 99)
)
@settings(max_examples=40, deadline=None)
def test_rotary_scores_depend_only_on_the_offset(p: int, r: int, shift: int, seed: int) -> None:
    q, k = rand(1, 16, seed=seed), rand(1, 16, seed=seed + 100)
    cos, sin = rotary_embedding(90, 16, dtype=torch.float64)

    def score(i: int, j: int) -> torch.Tensor:
        return (
            apply_rotary(q, cos[i : i + 1], sin[i : i + 1])
            @ apply_rotary(k, cos[j : j + 1], sin[j : j + 1]).T
        )

    torch.testing.assert_close(score(p, r), score(p + shift, r + shift))


def test_apply_rotary_rejects_bad_input() -> None:
    cos, sin = rotary_embedding(4, 8)
    with pytest.raises(ValueError, match="the last dim of x must be even"):
        apply_rotary(torch.randn(4, 7), cos, sin)
    with pytest.raises(ValueError, match=r"cos must broadcast to \(4, 4\).*got \(3, 4\)"):
        apply_rotary(torch.randn(4, 8), cos[:3], sin)
    with pytest.raises(TypeError, match="sin must be a torch.Tensor"):
        apply_rotary(torch.randn(4, 8), cos, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="d must be even"):
        rotary_embedding(4, 5)
    with pytest.raises(TypeError, match="dtype must be a floating-point"):
        rotary_embedding(4, 6, dtype=torch.long)


def paper_slopes(n: int) -> list[float]:
    """The slopes of Press et al.'s reference code, written independently."""

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n).is_integer():
        return power_of_2(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_2(closest) + paper_slopes(2 * closest)[0::2][: n - closest]


@pytest.mark.parametrize("heads", [1, 2, 4, 6, 8, 12, 16])
def test_alibi_slopes_are_the_papers(heads: int) -> None:
    slopes = alibi_slopes(heads)
    assert slopes.shape == (heads,)
    torch.testing.assert_close(slopes, torch.tensor(paper_slopes(heads)))


def test_alibi_slopes_for_eight_heads() -> None:
    torch.testing.assert_close(alibi_slopes(8), 0.5 ** torch.arange(1.0, 9.0))


def test_alibi_bias_is_minus_slope_times_distance() -> None:
    bias = alibi_bias(5, 4)
    assert bias.shape == (4, 5, 5)
    slopes = alibi_slopes(4)
    for h in range(4):
        for i in range(5):
            for j in range(5):
                assert bias[h, i, j] == pytest.approx(-slopes[h].item() * abs(i - j))
    cached = alibi_bias(2, 4, m=6, dtype=torch.float64)  # queries at positions 4 and 5
    assert cached.shape == (4, 2, 6) and cached.dtype == torch.float64
    torch.testing.assert_close(cached, alibi_bias(6, 4, dtype=torch.float64)[:, 4:])
    assert (cached[:, 0, 4] == 0).all() and (cached[:, 1, 5] == 0).all()


def test_alibi_bias_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="m must be >= n"):
        alibi_bias(4, 2, m=3)
    with pytest.raises(ValueError, match="num_heads must be > 0"):
        alibi_bias(4, 0)
    with pytest.raises(TypeError, match="dtype must be a floating-point"):
        alibi_bias(4, 2, dtype=torch.int64)
