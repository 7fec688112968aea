"""kmalloc: placeholder until the module lands (issue 4)."""

from __future__ import annotations

__all__: list[str] = []
