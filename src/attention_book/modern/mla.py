"""Chapter 7: mla (being written)."""

from __future__ import annotations

__all__: list[str] = []
