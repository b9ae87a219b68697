"""Chapter 7: sinks (being written)."""

from __future__ import annotations

__all__: list[str] = []
