"""The argument checks that every attention function and module shares."""

from __future__ import annotations

import torch

from .. import _validate


def _check_rank_and_batch(a: torch.Tensor, b: torch.Tensor, a_name: str, b_name: str) -> None:
    _validate.tensor(a_name, a, min_ndim=2)
    _validate.tensor(b_name, b, min_ndim=2)
    if b.ndim != a.ndim or b.shape[:-2] != a.shape[:-2]:
        raise ValueError(
            f"{b_name} must be (..., M, d) with the leading dims of {a_name} "
            f"{tuple(a.shape)}, got {tuple(b.shape)}"
        )
    if a.dtype != b.dtype:
        raise TypeError(f"{a_name} and {b_name} must share one dtype, got {a.dtype} and {b.dtype}")


def _check_last_dim(name: str, x: torch.Tensor, size: int) -> None:
    if x.shape[-1] != size:
        raise ValueError(f"{name} must have {size} features, got shape {tuple(x.shape)}")


def _check_queries_keys(queries: torch.Tensor, keys: torch.Tensor) -> None:
    _check_rank_and_batch(queries, keys, "queries", "keys")
    if keys.shape[-1] != queries.shape[-1]:
        raise ValueError(
            f"keys must have the feature size d={queries.shape[-1]} of queries "
            f"{tuple(queries.shape)}, got {tuple(keys.shape)}"
        )


def _check_values(keys: torch.Tensor, values: torch.Tensor) -> None:
    _validate.tensor("values", values, min_ndim=2)
    if values.ndim != keys.ndim or values.shape[:-1] != keys.shape[:-1]:
        raise ValueError(
            f"values must be (..., M, d_v) matching keys {tuple(keys.shape)} in all but the "
            f"last dim, got {tuple(values.shape)}"
        )
    if values.dtype != keys.dtype:
        raise TypeError(
            f"queries, keys and values must share one dtype, got {keys.dtype} and {values.dtype}"
        )


def _check_bias(bias: object, scores: torch.Tensor) -> None:
    if not isinstance(bias, torch.Tensor):
        raise TypeError(f"bias must be a floating-point torch.Tensor, got {type(bias).__name__}")
    if bias.dtype != scores.dtype:
        raise TypeError(f"bias must have the dtype {scores.dtype} of the scores, got {bias.dtype}")
    target = tuple(scores.shape)
    if not _validate.broadcasts_to(bias.shape, target):
        raise ValueError(
            f"bias of shape {tuple(bias.shape)} does not broadcast to the scores shape {target}"
        )


def _check_mask(mask: object, target: tuple[int, ...], target_name: str) -> None:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a boolean torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must have dtype torch.bool (True = may attend), got {mask.dtype}")
    if not _validate.broadcasts_to(mask.shape, target):
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the {target_name} "
            f"shape {target}"
        )
