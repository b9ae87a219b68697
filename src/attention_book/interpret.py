"""Reading attention: attention rollout, and forward passes with the weights replaced.

:func:`attention_rollout` follows Abnar & Zuidema (2020). :func:`replaced_attention` lets an
experiment swap one attention module's weights for others (permuted, uniform, ...) and see
how much the model's output cares, in the spirit of Jain & Wallace (2019).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from . import _validate
from .attention import MultiHeadAttention

__all__ = ["attention_rollout", "replaced_attention"]


def attention_rollout(weights: torch.Tensor, residual: bool = True) -> torch.Tensor:
    """Combine the attention of every layer into one map from the top layer to the input.

    The heads of each layer are averaged. With ``residual``, each layer's map becomes
    ``0.5 * A + 0.5 * I``, rows renormalised, to account for the residual connection that
    carries every token past the attention. The layers are then chained,
    ``R = A_L @ ... @ A_2 @ A_1``, so ``R[i, j]`` is the share of the top-layer token ``i``
    that flows from input token ``j``.

    Args:
        weights: ``(L, ..., H, N, N)`` attention weights, first layer first, rows summing to
            one; e.g. ``(L, H, N, N)`` for one text or ``(L, B, H, N, N)`` for a batch.
        residual: add the identity for the residual connection (Abnar & Zuidema's rollout);
            ``False`` multiplies the raw head-averaged maps.

    Returns:
        ``(..., N, N)``, every row summing to one.

    Introduced in :ref:`sec-reading-attention`.
    """
    _validate.tensor("weights", weights)
    if weights.ndim < 4 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(
            "weights must be (L, ..., H, N, N) with square (N, N) maps, "
            f"got shape {tuple(weights.shape)}"
        )
    if not isinstance(residual, bool):
        raise TypeError(f"residual must be a bool, got {type(residual).__name__}")
    maps = weights.mean(dim=-3)  # (L, ..., N, N): average the heads
    if residual:
        eye = torch.eye(maps.shape[-1], dtype=maps.dtype, device=maps.device)
        maps = 0.5 * maps + 0.5 * eye
        maps = maps / maps.sum(dim=-1, keepdim=True)
    rollout = maps[0]
    for layer_map in maps[1:]:
        rollout = layer_map @ rollout  # later layers act on what earlier ones mixed
    return rollout


@contextmanager
def replaced_attention(
    module: MultiHeadAttention, replace: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Make an attention module use other weights, inside a ``with`` block.

    The module computes its weights as usual, ``replace(weights)`` gives new ones of the same
    shape, and the output is computed from the new weights and the module's own values:
    ``out_proj(merge(new_weights @ v))``. The module returns (and a layer stores) the new
    weights. Everything is restored when the block ends, even on an error.

    Args:
        module: a :class:`attention_book.attention.MultiHeadAttention`, e.g.
            ``encoder.layers[2].self_attn``.
        replace: maps the weights ``(B, H, N, M)`` to new weights of the same shape, e.g.
            a permutation of each row or a uniform distribution.

    Returns:
        A context manager; the replacement holds while it is open.

    Introduced in :ref:`sec-reading-attention`.
    """
    if not isinstance(module, MultiHeadAttention):
        raise TypeError(f"module must be a MultiHeadAttention, got {type(module).__name__}")
    if not callable(replace):
        raise TypeError(f"replace must be a function, got {type(replace).__name__}")
    values: dict[str, torch.Tensor] = {}

    def keep_values(_: Any, __: Any, v: torch.Tensor) -> None:
        values["v"] = v  # (B, M, d_model), before the split into heads

    def use_new_weights(
        _: Any, __: Any, output: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _, weights = output  # (B, H, N, M)
        new = replace(weights)
        if not isinstance(new, torch.Tensor) or new.shape != weights.shape:
            raise ValueError(
                f"replace must return weights of shape {tuple(weights.shape)}, got "
                f"{tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__}"
            )
        heads = new.to(weights.dtype) @ module.split_heads(values["v"])  # (B, H, N, d_head)
        return module.out_proj(module.merge_heads(heads)), new

    handles = [
        module.v_proj.register_forward_hook(keep_values),
        module.register_forward_hook(use_new_weights),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
