"""Argument checks shared by the public functions: one clear error per kind of bad input."""

from __future__ import annotations

import math

import torch


def tensor(name: str, value: object, *, min_ndim: int = 1, floating: bool = True) -> torch.Tensor:
    """Return ``value`` if it is a tensor of at least ``min_ndim`` dims; else raise, naming it."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s), got shape {tuple(value.shape)}"
        )
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {value.dtype}")
    return value


def positive(name: str, value: object) -> float:
    """Return ``value`` as a float if it is a finite number greater than zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int greater than zero."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def dim_index(name: str, dim: int, ndim: int) -> int:
    """Return ``dim`` if it indexes a tensor of ``ndim`` dimensions."""
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"{name} must be an int, got {type(dim).__name__}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name}={dim} is out of range for a tensor with {ndim} dimension(s)")
    return dim


def broadcasts_to(shape: tuple[int, ...] | torch.Size, target: tuple[int, ...]) -> bool:
    """Whether a tensor of ``shape`` broadcasts to exactly ``target`` (without growing it)."""
    target = tuple(target)
    if tuple(shape) == target[len(target) - len(shape) :]:  # the usual case, checked first
        return True
    try:
        return tuple(torch.broadcast_shapes(tuple(shape), target)) == target
    except RuntimeError:
        return False


def seed(value: object) -> int:
    """Return the int seed ``value``, or one drawn from it if it is a ``torch.Generator``."""
    if isinstance(value, torch.Generator):
        return int(torch.randint(2**62, (1,), generator=value))
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"seed must be an int or a torch.Generator, got {type(value).__name__}")
    return value
