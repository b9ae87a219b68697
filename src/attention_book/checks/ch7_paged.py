"""Checkers for chapter 7: paged (being written)."""

from __future__ import annotations

__all__: list[str] = []
