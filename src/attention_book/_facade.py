"""The one step every facade package takes: become the home of what it re-exports."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def adopt(namespace: dict[str, Any], names: Iterable[str]) -> None:
    """Re-home the classes and functions that a package's submodules define to the package.

    The API page then documents them under the package, and ``repr`` and pickle name the
    path readers import them from (``attention_book.attention.MultiHeadAttention``, not
    ``attention_book.attention.multi_head.MultiHeadAttention``). Names that another module
    defines (``sinusoidal_positions`` in ``models.transformer``) and data (documented by the
    package's ``#:`` comments) keep their home.

    Args:
        namespace: the package's ``globals()``.
        names: the names it re-exports, usually its ``__all__``.
    """
    package = namespace["__name__"]
    for name in names:
        obj = namespace[name]
        if callable(obj) and str(getattr(obj, "__module__", "")).startswith(package + "."):
            obj.__module__ = package
