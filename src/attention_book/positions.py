"""Position information for attention, which on its own ignores the order of its inputs.

Two families. **Absolute** codes are added to the token embeddings before the first layer:
:func:`sinusoidal_positions` (fixed) or a learned table. **Relative** schemes act inside every
attention and make the scores depend on the offset between query and key: rotary embeddings
(:func:`rotary_embedding` and :func:`apply_rotary`, RoPE) rotate queries and keys, ALiBi
(:func:`alibi_bias`) adds a penalty that grows with the distance.
"""

from __future__ import annotations

import math

import torch

from . import _validate

__all__ = [
    "alibi_bias",
    "alibi_slopes",
    "apply_rotary",
    "rotary_embedding",
    "sinusoidal_positions",
]


def sinusoidal_positions(n: int, d: int, base: float = 10000.0) -> torch.Tensor:
    """Build the sine and cosine position codes of the original Transformer.

    Row ``p`` holds ``sin(p / base^(2i/d))`` in column ``2i`` and ``cos(...)`` in ``2i + 1``.

    Args:
        n: number of positions, > 0.
        d: size of each code, > 0 and even.
        base: the longest wavelength is ``2 pi base``, > 0.

    Returns:
        A float ``(n, d)`` tensor.

    Introduced in :ref:`sec-positions`.
    """
    n = _validate.positive_int("n", n)
    d = _even("d", d)
    base = _validate.positive("base", base)
    angle = _angles(n, d, base, None, torch.float32)  # (n, d/2)
    codes = torch.zeros(n, d)
    codes[:, 0::2] = torch.sin(angle)
    codes[:, 1::2] = torch.cos(angle)
    return codes


def rotary_embedding(
    n: int,
    d: int,
    base: float = 10000.0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tabulate the cosines and sines of the rotary position embedding (RoPE).

    Position ``p`` rotates the feature pair ``(2i, 2i + 1)`` by the angle
    ``p * base^(-2i/d)``, the frequencies of :func:`sinusoidal_positions`.

    Args:
        n: number of positions, > 0.
        d: size of the vectors to rotate (per head), > 0 and even.
        base: sets the slowest frequency, ``base^(-(d-2)/d)``; > 0.
        device: where to build the tables.
        dtype: a floating-point dtype for the tables.

    Returns:
        ``(cos, sin)``, each ``(n, d / 2)``, for :func:`apply_rotary`.

    Introduced in :ref:`sec-positions`.
    """
    n = _validate.positive_int("n", n)
    d = _even("d", d)
    base = _validate.positive("base", base)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    angle = _angles(n, d, base, device, torch.promote_types(dtype, torch.float32))  # (n, d/2)
    return angle.cos().to(dtype), angle.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each feature pair ``(2i, 2i + 1)`` of every position by its angle.

    ``(x_2i, x_2i+1) -> (x_2i cos - x_2i+1 sin, x_2i sin + x_2i+1 cos)``. Rotating queries
    and keys this way makes their dot product depend on the offset between their positions
    only.

    Args:
        x: ``(..., N, d)``, ``d`` even; row ``p`` is the vector at position ``p``.
        cos: ``(N, d / 2)`` from :func:`rotary_embedding` (or any shape that broadcasts to
            ``(..., N, d / 2)``).
        sin: the matching sines, the shape of ``cos``.

    Returns:
        The rotated tensor, the shape and dtype of ``x``.

    Introduced in :ref:`sec-positions`.
    """
    _validate.tensor("x", x, min_ndim=2)
    _even("the last dim of x", x.shape[-1])
    want = (*x.shape[:-1], x.shape[-1] // 2)
    for name, table in (("cos", cos), ("sin", sin)):
        _validate.tensor(name, table)
        if not _validate.broadcasts_to(table.shape, want):  # a decoder checks every step
            raise ValueError(
                f"{name} must broadcast to {want} (one angle per position and feature pair of "
                f"x {tuple(x.shape)}), got {tuple(table.shape)}"
            )
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., N, d/2) each
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2)  # (..., N, d): pairs back in their places


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """Give each head its ALiBi slope, a geometric sequence as in Press et al.

    For ``H`` a power of two the slopes are ``2^(-8/H), 2^(-16/H), ..., 2^(-8)``. Otherwise
    the slopes of the next lower power of two ``P`` come first, then every other slope of
    ``2P`` heads, as in the paper's code.

    Args:
        num_heads: number of heads ``H``, > 0.

    Returns:
        A float ``(H,)`` tensor of slopes in ``(0, 1)``, largest first.

    Introduced in :ref:`sec-positions`.
    """
    num_heads = _validate.positive_int("num_heads", num_heads)

    def power_of_two(h: int) -> list[float]:
        return [2 ** (-8 * (i + 1) / h) for i in range(h)]

    lower = 2 ** math.floor(math.log2(num_heads))
    slopes = power_of_two(lower) + power_of_two(2 * lower)[0::2][: num_heads - lower]
    return torch.tensor(slopes)


def alibi_bias(
    n: int,
    num_heads: int,
    m: int | None = None,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Build ALiBi's additive attention bias: minus each head's slope times the distance.

    ``bias[h, i, j] = -slope[h] * |pos(i) - j|``. For the keys a causal query may see
    (``j <= pos(i)``) this is the paper's ``-slope * (pos(i) - j)``; for later keys, as in an
    encoder, we use the same distance on both sides.

    Args:
        n: number of queries, > 0.
        num_heads: number of heads, > 0.
        m: number of keys, >= ``n``; ``None`` means ``n``. As in
            :func:`attention_book.attention.causal_mask`, the queries are the last ``n``
            positions: query ``i`` sits at ``m - n + i``.
        device: where to build the bias.
        dtype: a floating-point dtype for the bias.

    Returns:
        ``(H, n, m)``, to add to the scores of ``(B, H, n, m)`` attention.

    Introduced in :ref:`sec-positions`.
    """
    n = _validate.positive_int("n", n)
    m = n if m is None else _validate.positive_int("m", m)
    if m < n:
        raise ValueError(f"m must be >= n (each query needs its own key), got n={n}, m={m}")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    query_pos = torch.arange(m - n, m, device=device)[:, None]  # (n, 1)
    key_pos = torch.arange(m, device=device)[None, :]  # (1, m)
    distance = (query_pos - key_pos).abs().to(dtype)  # (n, m)
    slopes = alibi_slopes(num_heads).to(device=device, dtype=dtype)
    return -slopes[:, None, None] * distance  # (H, n, m)


def _even(name: str, d: object) -> int:
    d = _validate.positive_int(name, d)
    if d % 2:
        raise ValueError(f"{name} must be even (features come in pairs), got {d}")
    return d


def _angles(
    n: int, d: int, base: float, device: torch.device | None, dtype: torch.dtype
) -> torch.Tensor:
    position = torch.arange(n, dtype=dtype, device=device)[:, None]  # (n, 1)
    frequency = base ** (-torch.arange(0, d, 2, dtype=dtype, device=device) / d)  # (d/2,)
    return position * frequency  # (n, d/2)
