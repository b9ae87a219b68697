"""Checkers for chapter 7: hybrid (being written)."""

from __future__ import annotations

__all__: list[str] = []
